// Every optimization of evaluation (request-only entities, slices by action, slices by
// principal and resource, context projection, evaluation without the schema) must decide exactly as the plain engine (every
// static entity, every policy, the whole context against the whole schema): the same decision,
// the same determining policies and errors, or the same deny code and message. Thousands of
// generated requests (test/helpers/generate.ts) for the example and for the example grown to
// 1,000 policies. The optimized engine decides compiled (src/policy/compiled/) wherever it can:
// the plain engine is cedar-wasm alone, so this is also the compiled evaluator held to
// cedar-wasm on the requests Mandate makes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import type { PolicyVersion } from '../../src/policy/loader.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import { writeGrownExample } from '../../bench/policy-set.js';
import { generateRequests, materialize } from '../helpers/generate.js';
import * as cedar from '../../src/policy/cedar.js';
import type { CedarRequest } from '../../src/core/cedar-request.js';

function versionOf(config: string): PolicyVersion {
  return loadRuntime(config, { mode: 'validate' }).store.current.version;
}

/**
 * `leanPlain`: the plain engine also sends request-only entities. Used for the grown set, where
 * sending 2,000 static entities costs ~20 ms per evaluation; request-only entities are compared
 * with all entities on the example (first test, and request-entities.test.ts).
 */
function engines(version: PolicyVersion, leanPlain = false): { plain: PolicyEngine; optimized: PolicyEngine } {
  const tag = Math.random().toString(36).slice(2);
  const plain = PolicyEngine.prepare(version, `plain-${tag}`, { requestEntitiesOnly: leanPlain, slicing: false, projection: false, compiled: false });
  const optimized = PolicyEngine.prepare(version, `optimized-${tag}`);
  assert.ok(plain.ok && optimized.ok);
  return { plain: plain.value, optimized: optimized.value };
}

/** Erroring policies by id: the compiled evaluator's error messages are its own, Cedar's answer names the policies. */
function view(engine: PolicyEngine, request: CedarRequest, compiled = false): unknown {
  const out = (compiled ? engine.evaluateCompiled(request) : null) ?? engine.evaluate(request);
  if (!out.ok) return { code: out.code, message: out.message };
  return { decision: out.value.decision, determining: [...out.value.determining].sort(), errors: out.value.errors.map((e) => e.slice(0, e.indexOf(': '))).sort() };
}

function compareAll(version: PolicyVersion, count: number, seed: number, leanPlain = false): { projected: number; schemaless: number; compiled: number; plainPath: number; allowed: number; scoped: number } {
  const { plain, optimized } = engines(version, leanPlain);
  const stats = { projected: 0, schemaless: 0, compiled: 0, plainPath: 0, allowed: 0, scoped: 0 };
  for (const [i, spec] of generateRequests(version, count, seed).entries()) {
    const a = materialize(spec, optimized);
    const b = materialize(spec, plain);
    if (optimized.projects(a)) stats.projected++;
    else stats.plainPath++;
    if (optimized.schemaless(a)) stats.schemaless++;
    if (optimized.policySetFor(a).includes('-scoped-')) stats.scoped++;
    if (optimized.evaluateCompiled(a) !== null) stats.compiled++;
    const expected = view(plain, b);
    assert.deepEqual(view(optimized, a, true), expected, `request ${i} (seed ${seed}): ${JSON.stringify(spec)}`);
    if ((expected as { decision?: string }).decision === 'allow') stats.allowed++;
  }
  return stats;
}

describe('optimized evaluation decides exactly as the plain engine', () => {
  it('on 3,000 generated requests against the example', () => {
    const version = versionOf(EMBEDDED_CONFIG);
    const stats = compareAll(version, 3000, 20261129);
    // Both paths and both outcomes must actually be exercised, or the comparison proves little.
    process.stdout.write(`# example: ${JSON.stringify(stats)}\n`);
    assert.ok(stats.projected > 1000, `projected: ${stats.projected}`);
    assert.ok(stats.schemaless > 1000, `without the schema: ${stats.schemaless}`);
    assert.equal(stats.compiled, stats.schemaless, 'every request proven to need no schema is decided compiled');
    assert.ok(stats.plainPath > 300, `plain path: ${stats.plainPath}`);
    assert.ok(stats.allowed > 100, `allowed: ${stats.allowed}`);
  });

  it('on 2,000 generated requests against the example grown to 1,000 policies (sliced by principal and resource)', () => {
    const { config } = writeGrownExample(1000);
    const version = versionOf(config);
    const { optimized } = engines(version, true);
    assert.ok(optimized.requestEntitiesOnly, 'the grown set keeps request-only entities');
    assert.ok(optimized.scopeSlicedActions > 0, 'the grown set is sliced by scope');
    const stats = compareAll(version, 2000, 7, true);
    process.stdout.write(`# grown to 1,000: ${JSON.stringify(stats)}\n`);
    assert.ok(stats.scoped > 500, `scoped: ${stats.scoped}`);
    assert.ok(stats.compiled > 1000, `compiled: ${stats.compiled}`);
    assert.ok(stats.allowed > 25, `allowed: ${stats.allowed}`);
  });

  it('on 1,500 generated requests against the example without its schema, action groups as Action entities or absent', () => {
    // Without a schema, action groups come from the entity data, and slicing and request-only
    // entities must step aside when there are any (an allow by accident otherwise: the forbids
    // scoped `action in` a group were left out). Requests are typed by the example's schema and
    // evaluated without it.
    const version = versionOf(EMBEDDED_CONFIG);
    const resolved = cedar.schemaToJsonWithResolvedTypes(version.schemaText as string);
    assert.equal(resolved.type, 'success');
    const declared = (resolved as { json: Record<string, { actions: Record<string, { memberOf?: { id: string }[] }> }> }).json['']?.actions ?? {};
    const actions = Object.keys(declared);
    const actionEntities = Object.entries(declared).map(([id, a]) => ({ uid: { type: 'Action', id }, attrs: {}, parents: (a.memberOf ?? []).map((m) => ({ type: 'Action', id: m.id })) }));
    assert.ok(actionEntities.some((e) => e.parents.length > 0), 'the example has action groups');
    const specs = generateRequests(version, 1500, 31);
    const decisions: string[][] = [];
    for (const [name, v] of [
      ['with Action entities', { ...version, schemaText: null, entities: [...version.entities, ...actionEntities] as PolicyVersion['entities'] }],
      ['without', { ...version, schemaText: null }],
    ] as const) {
      const tag = Math.random().toString(36).slice(2);
      const plain = PolicyEngine.prepare(v, `noschema-plain-${tag}`, { requestEntitiesOnly: false, slicing: false, projection: false, actions, compiled: false });
      const optimized = PolicyEngine.prepare(v, `noschema-optimized-${tag}`, { actions });
      assert.ok(plain.ok && optimized.ok);
      assert.equal(optimized.value.derived.slicing, name === 'without', `${name}: slicing`);
      if (name === 'with Action entities') assert.equal(optimized.value.requestEntitiesOnly, false);
      const seen: string[] = [];
      for (const [i, spec] of specs.entries()) {
        const expected = view(plain.value, materialize(spec, plain.value));
        assert.deepEqual(view(optimized.value, materialize(spec, optimized.value), true), expected, `${name}, request ${i}: ${JSON.stringify(spec)}`);
        seen.push(JSON.stringify(expected));
      }
      decisions.push(seen);
    }
    // The Action entities change answers: the comparison covered the case that was wrong.
    const differing = decisions[0]?.filter((d, i) => d !== decisions[1]?.[i]).length ?? 0;
    process.stdout.write(`# without the schema: ${differing} of ${specs.length} answers change with the Action entities\n`);
    assert.ok(differing > 10, `answers that depend on action groups: ${differing}`);
  });
});
