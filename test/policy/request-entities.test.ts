// Sending a request only its own entities (ancestors flattened in) must decide exactly as
// sending every static entity: a differential test over the examples, re-issued as many
// principals; and the analysis must refuse policy sets that read other entities.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { decide, createDecisionState, type DecisionState } from '../../src/check/pipeline.js';
import { loadRuntime } from '../../src/cli/runtime.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { EvaluationPool } from '../../src/policy/pool.js';
import { loadPolicyVersion, type PolicyVersion } from '../../src/policy/loader.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../../src/server/protos.js';
import { copyExample, exampleRequests } from '../helpers/server.js';
import type { CedarRequest } from '../../src/core/cedar-request.js';

const PRINCIPALS = [
  'spiffe://example.org/ns/support/sa/support-agent',
  'spiffe://example.org/ns/billing/sa/billing-agent',
  'spiffe://example.org/ns/support/sa/triage-bot',
  'spiffe://example.org/ns/support/sa/supervisor',
  'spiffe://other.org/ns/support/sa/support-agent',
  '',
];

function states(configFile: string | null): { lean: DecisionState; full: DecisionState; leanEngine: PolicyEngine } {
  const rt = loadRuntime(configFile, { mode: 'validate' });
  const version = rt.store.current.version;
  // The optimized engine (request-only entities, slices by action) against the plain one.
  const make = (slot: string, requestEntitiesOnly: boolean | undefined): { state: DecisionState; engine: PolicyEngine } => {
    const engine = PolicyEngine.prepare(version, slot, requestEntitiesOnly === undefined ? {} : { requestEntitiesOnly, slicing: false, projection: false });
    assert.ok(engine.ok);
    return { state: createDecisionState(rt.config, rt.routes, engine.value, rt.identifier, rt.groups, null), engine: engine.value };
  };
  const lean = make(`diff-lean-${Math.random()}`, undefined);
  return { lean: lean.state, full: make(`diff-full-${Math.random()}`, false).state, leanEngine: lean.engine };
}

/** A schema-less policy version from one policy file and entities.json, loaded from a temporary folder. */
function schemalessVersion(name: string, policies: string, entities: unknown[]): PolicyVersion {
  const dir = mkdtempSync(join(tmpdir(), `mandate-${name}-`));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'p.cedar'), policies);
  writeFileSync(join(dir, 'entities.json'), JSON.stringify(entities));
  return loadPolicyVersion({ policies: join(dir, 'policies'), schema: null, entities: join(dir, 'entities.json') });
}

describe('request-only entities and slices by action', () => {
  it('are used for the example (its policies read nothing beyond the request)', () => {
    const { leanEngine } = states(null);
    assert.equal(leanEngine.requestEntitiesOnly, true);
    assert.ok(leanEngine.slicedActions >= 10, `sliced actions: ${leanEngine.slicedActions}`);
    assert.ok(leanEngine.projectedActions >= 20, `projected actions: ${leanEngine.projectedActions}`);
  });

  it('decide every example, as every principal, exactly as all entities and all policies do', async () => {
    const { lean, full } = states(null);
    let compared = 0;
    for (const { name, request } of exampleRequests()) {
      for (const principal of PRINCIPALS) {
        const json = structuredClone(request) as { attributes?: { source?: { principal?: string } } };
        if (json.attributes?.source !== undefined) json.attributes.source.principal = principal;
        const message = (): CheckRequestMessage => decodeCheckRequestBytes(encodeCheckRequest(json)) as CheckRequestMessage;
        const [a, b] = [await decide(message(), lean), await decide(message(), full)];
        // Determining policies and errors are sets in Cedar's answer: compare them as sets.
        const view = (d: typeof a) => [d.allowed, d.code, [...d.determining].sort(), [...d.errors].sort()];
        assert.deepEqual(view(a), view(b), `${name} as ${principal || 'anonymous'}`);
        compared++;
      }
    }
    assert.ok(compared >= 150, `compared ${compared}`);
  });

  it('are refused for a policy that reads an attribute of an entity the request does not carry', () => {
    const { dir, config } = copyExample();
    writeFileSync(join(dir, 'policies', 'owner.cedar'), '@id("group-flag")\nforbid (principal, action, resource) when { Group::"support-agents" in Group::"approvers" };\n');
    const version = loadPolicyVersion(loadRuntime(config, { mode: 'validate' }).config);
    const engine = PolicyEngine.prepare(version, `refused-${Math.random()}`);
    assert.ok(engine.ok);
    assert.equal(engine.value.requestEntitiesOnly, false);
  });

  it('and slicing are off without a schema when the static entities give actions groups', async () => {
    // Without a schema, `action in Action::"read"` follows the Action entities of entities.json.
    // Requests built from their own entities would not carry the action's groups, and slicing
    // reads groups from the schema only: the forbid would be left out and the request allowed.
    const version = schemalessVersion('action-groups', '@id("allow-all")\npermit (principal, action, resource);\n@id("no-reads")\nforbid (principal, action in Action::"read", resource);\n', [
      { uid: { type: 'Action', id: 'GET /x' }, attrs: {}, parents: [{ type: 'Action', id: 'read' }] },
      { uid: { type: 'Action', id: 'read' }, attrs: {}, parents: [] },
    ]);
    const prepared = PolicyEngine.prepare(version, `action-groups-${Math.random()}`, { actions: ['GET /x', 'GET /y'] });
    assert.ok(prepared.ok);
    const engine = prepared.value;
    assert.deepEqual(engine.derived, { requestEntitiesOnly: false, slicing: false });
    assert.equal(engine.slicedActions, 0);
    const request = (action: string): CedarRequest => ({
      principal: { type: 'Workload', id: 'spiffe://example.org/a' },
      action: { type: 'Action', id: action },
      resource: { type: 'Thing', id: 't' },
      context: {},
      entities: engine.entitiesFor([]),
    });
    const denied = engine.evaluate(request('GET /x'));
    assert.deepEqual(denied, { ok: true, value: { decision: 'deny', determining: ['no-reads'], errors: [], path: 'wasm-inline' } });
    const allowed = engine.evaluate(request('GET /y'));
    assert.deepEqual(allowed, { ok: true, value: { decision: 'allow', determining: ['allow-all'], errors: [], path: 'wasm-inline' } });
    // Not on the compiled path: the static entities give the action its groups, so requests
    // do not carry their own entities alone.
    assert.equal(engine.evaluateCompiled(request('GET /x')), null);
    const inPool = (o: Awaited<ReturnType<typeof pool.evaluate>>): unknown => (o.ok ? { ok: true, value: { ...o.value, path: 'wasm-inline' } } : o);
    // A pool worker is sent no static entities: it must prepare with the main thread's choices.
    const pool = new EvaluationPool({ workers: 1, maxQueue: 10, maxBatch: 4 });
    try {
      pool.pushVersion(engine);
      const x = await pool.evaluate(engine, request('GET /x'));
      assert.equal(x.ok && x.value.path, 'wasm-pool');
      assert.deepEqual(inPool(x), denied);
      assert.deepEqual(inPool(await pool.evaluate(engine, request('GET /y'))), allowed);
    } finally {
      await pool.close();
    }
  });

  it('merge pattern groups into the flattened parents once each, with their own ancestors', () => {
    const version = schemalessVersion('pattern-parents', 'permit (principal in Group::"root", action, resource);\n', [
      { uid: { type: 'Group', id: 'root' }, attrs: {}, parents: [] },
      { uid: { type: 'Group', id: 'g1' }, attrs: {}, parents: [{ type: 'Group', id: 'root' }] },
      { uid: { type: 'Workload', id: 'w' }, attrs: {}, parents: [{ type: 'Group', id: 'g1' }] },
      { uid: { type: 'WorkloadGroup', id: 'wg' }, attrs: {}, parents: [{ __entity: { type: 'Group', id: 'root' } }, { type: 'Group', id: 'other' }] },
    ]);
    const prepared = PolicyEngine.prepare(version, `pattern-parents-${Math.random()}`, { requestEntitiesOnly: true });
    assert.ok(prepared.ok);
    const engine = prepared.value;
    const key = (u: unknown): string => {
      const o = (u as { __entity?: { type: string; id: string } }).__entity ?? (u as { type: string; id: string });
      return `${o.type}::${o.id}`;
    };
    const parents = (id: string, extra: { type: string; id: string }[]): string[] => engine.parentsFor({ type: 'Workload', id }, extra).map(key);
    assert.deepEqual(parents('w', []), ['Group::g1', 'Group::root']);
    // root comes once although both w's ancestors and wg's parents name it (in two spellings).
    assert.deepEqual(parents('w', [{ type: 'WorkloadGroup', id: 'wg' }]).sort(), ['Group::g1', 'Group::other', 'Group::root', 'WorkloadGroup::wg']);
    assert.deepEqual(parents('w', [{ type: 'WorkloadGroup', id: 'wg' }, { type: 'WorkloadGroup', id: 'wg' }]).length, 4);
    assert.deepEqual(parents('unknown', [{ type: 'WorkloadGroup', id: 'wg' }]).sort(), ['Group::other', 'Group::root', 'WorkloadGroup::wg']);
    const own = engine.ownEntity({ type: 'Workload', id: 'w' }, []);
    assert.equal(own.known === undefined ? null : key(own.known.uid), 'Workload::w');
    assert.deepEqual(own.parents.map(key), ['Group::g1', 'Group::root']);
    // Frozen pattern groups (WorkloadGroups' own uids): the merged list is kept per workload and
    // shared, frozen, by its requests (the compiled readers keep what they read from it), until
    // the groups are other objects.
    const wg = Object.freeze({ type: 'WorkloadGroup', id: 'wg' });
    const first = engine.parentsFor({ type: 'Workload', id: 'w' }, [wg]);
    assert.ok(Object.isFrozen(first));
    assert.equal(engine.parentsFor({ type: 'Workload', id: 'w' }, [wg]), first);
    const other = Object.freeze({ type: 'WorkloadGroup', id: 'other' });
    const changed = engine.parentsFor({ type: 'Workload', id: 'w' }, [wg, other]);
    assert.notEqual(changed, first);
    assert.deepEqual(changed.map(key).sort(), ['Group::g1', 'Group::other', 'Group::root', 'WorkloadGroup::other', 'WorkloadGroup::wg']);
    // Groups that are not frozen could change: merged every time, never kept.
    const loose = { type: 'WorkloadGroup', id: 'wg' };
    assert.notEqual(engine.parentsFor({ type: 'Workload', id: 'w' }, [loose]), engine.parentsFor({ type: 'Workload', id: 'w' }, [loose]));
  });
});
