// Slicing by action at its edges: an action whose slice is every policy (the whole set), an
// action no policy, schema or route names (only the policies with no action constraint apply),
// and an action only a policy names. Each decided exactly as the plain engine (no slicing).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PolicyEngine } from '../../src/policy/engine.js';
import { loadPolicyVersion } from '../../src/policy/loader.js';
import { loadRuntime } from '../../src/cli/runtime.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import type { CedarRequest } from '../../src/core/cedar-request.js';
import { ascending } from '../../src/policy/compiled/scope.js';
import { seeded } from '../helpers/generate.js';

const POLICIES = `
@id("permit-all")
permit (principal, action, resource);

@id("no-x")
forbid (principal, action == Action::"x", resource) when { context has blocked };

@id("no-named")
forbid (principal, action in [Action::"named", Action::"x"], resource) when { context has named };
`;

function engines(): { plain: PolicyEngine; sliced: PolicyEngine } {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-slicing-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'p.cedar'), POLICIES);
  const version = loadPolicyVersion({ policies: join(dir, 'policies'), schema: null, entities: null });
  const tag = Math.random().toString(36).slice(2);
  // The routes know "x" and "y"; "named" is only named by a policy; "unknown" by nothing.
  const plain = PolicyEngine.prepare(version, `plain-${tag}`, { slicing: false, projection: false, actions: ['x', 'y'] });
  const sliced = PolicyEngine.prepare(version, `sliced-${tag}`, { actions: ['x', 'y'] });
  assert.ok(plain.ok && sliced.ok);
  return { plain: plain.value, sliced: sliced.value };
}

/** Determining policies and errors are sets in Cedar's answer: compared sorted. */
function view(engine: PolicyEngine, r: CedarRequest): unknown {
  const out = engine.evaluate(r);
  return out.ok ? { ...out.value, determining: [...out.value.determining].sort(), errors: [...out.value.errors].sort() } : out;
}

function request(action: string, context: Record<string, unknown>): CedarRequest {
  return { principal: { type: 'Workload', id: 'w' }, action: { type: 'Action', id: action }, resource: { type: 'Thing', id: 't' }, context: context as CedarRequest['context'], entities: [] };
}

describe('slicing by action', () => {
  it('decides every action as the whole set does, known to the routes, named by a policy only, or unknown', () => {
    const { plain, sliced } = engines();
    let denied = 0;
    for (const action of ['x', 'y', 'named', 'unknown']) {
      for (const context of [{}, { blocked: true }, { named: true }, { blocked: true, named: true }]) {
        const expected = view(plain, request(action, context)) as { decision?: string };
        assert.deepEqual(view(sliced, request(action, context)), expected, `${action} ${JSON.stringify(context)}`);
        if (expected.decision === 'deny') denied++;
      }
    }
    // x: denied with blocked or named (3 contexts); named: denied with named (2); y, unknown: never.
    assert.equal(denied, 5);
  });

  it('uses the whole set only for an action every policy can apply to', () => {
    const { sliced } = engines();
    const setOf = (action: string): string => sliced.policySetFor(request(action, {}));
    // "x" is matched by all three policies: its slice is the whole set.
    assert.equal(setOf('x'), sliced.policySetFor(request('x', { blocked: true })));
    assert.match(setOf('x'), /^policies-sliced-[a-z0-9]+$/);
    // Neither an unknown action nor "y" needs the whole set: both get the policies with no
    // action constraint (one shared set); "named" has its own slice.
    assert.match(setOf('unknown'), /-slice-\d+$/);
    assert.equal(setOf('unknown'), setOf('y'));
    assert.match(setOf('y'), /-slice-\d+$/);
    assert.match(setOf('named'), /-slice-\d+$/);
    assert.notEqual(setOf('named'), setOf('y'));
  });

  it('answers an action the schema does not declare as the whole set does (the example)', () => {
    const version = loadRuntime(EMBEDDED_CONFIG, { mode: 'validate' }).store.current.version;
    const tag = Math.random().toString(36).slice(2);
    const plain = PolicyEngine.prepare(version, `plain-schema-${tag}`, { slicing: false, projection: false, requestEntitiesOnly: true });
    const sliced = PolicyEngine.prepare(version, `sliced-schema-${tag}`);
    assert.ok(plain.ok && sliced.ok);
    const r: CedarRequest = {
      principal: { type: 'Workload', id: 'spiffe://example.org/ns/support/sa/support-agent' },
      action: { type: 'Action', id: 'DELETE /everything' },
      resource: { type: 'Ticket', id: 'T-1' },
      context: {},
      entities: [{ uid: { type: 'Workload', id: 'spiffe://example.org/ns/support/sa/support-agent' }, attrs: { trustDomain: 'example.org', path: '/ns/support/sa/support-agent' }, parents: [] }],
    };
    const expected = view(plain.value, r) as { code?: string };
    assert.equal(expected.code, 'internal_error', JSON.stringify(expected));
    assert.deepEqual(view(sliced.value, r), expected);
    // Not the whole set: a slice (the policies with no action constraint).
    assert.match(sliced.value.policySetFor(r), new RegExp(`^policies-sliced-schema-${tag}-slice-\\d+$`));
  });
});

describe('the scope index\'s candidate order', () => {
  it('sorts policy numbers ascending in place, short lists by insertion and long ones by sort', () => {
    const rand = seeded(7);
    for (let i = 0; i < 2000; i++) {
      const list = Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 50));
      const want = [...list].sort((a, b) => a - b);
      const got = ascending(list);
      assert.equal(got, list, 'in place');
      assert.deepEqual(got, want, `list ${i}`);
    }
  });
});
