// The principal entity is built once per workload and shared by its requests (principal.ts):
// it must still follow the policy version's static entities and the configured groups, and the
// compiled reader, which reads a shared entity once, must decide as it did on a fresh one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Identity } from '../../src/core/identity.js';
import { parseSpiffeId } from '../../src/core/spiffe-id.js';
import { WorkloadGroups } from '../../src/identity/groups.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { loadPolicyVersion } from '../../src/policy/loader.js';
import { buildPrincipal } from '../../src/policy/principal.js';

const POLICIES = `
permit (principal in Team::"red", action == Action::"read", resource);
forbid (principal in WorkloadGroup::"blocked", action, resource);
permit (principal, action == Action::"path", resource) when { principal.path == "/ns/a" };
`;

function engine(teamOfA: string): PolicyEngine {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-principal-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'p.cedar'), POLICIES);
  const entities = [
    { uid: { type: 'Team', id: 'red' }, attrs: {}, parents: [] },
    { uid: { type: 'Team', id: 'blue' }, attrs: {}, parents: [] },
    { uid: { type: 'Workload', id: 'spiffe://example.org/ns/a' }, attrs: {}, parents: [{ type: 'Team', id: teamOfA }] },
  ];
  writeFileSync(join(dir, 'entities.json'), JSON.stringify(entities));
  const version = loadPolicyVersion({ policies: join(dir, 'policies'), schema: null, entities: join(dir, 'entities.json') });
  const prepared = PolicyEngine.prepare(version, `principal-${teamOfA}-${Math.random()}`);
  assert.ok(prepared.ok);
  return prepared.value;
}

function workload(id: string): Identity {
  const spiffe = parseSpiffeId(id);
  assert.ok(spiffe.ok);
  return { kind: 'x509', spiffe: spiffe.value, jwt: null };
}

const parentIds = (e: { parents: readonly unknown[] }): string[] =>
  e.parents.map((p) => {
    const u = (p as { __entity?: { type: string; id: string } }).__entity ?? (p as { type: string; id: string });
    return `${u.type}::${u.id}`;
  }).sort();

function decide(eng: PolicyEngine, groups: WorkloadGroups, id: string, action: string): string {
  const principal = buildPrincipal(workload(id), { engine: eng, groups });
  const answer = eng.evaluateCompiled({
    principal: principal.uid as { type: string; id: string },
    action: { type: 'Action', id: action },
    resource: { type: 'Doc', id: 'd' },
    context: {},
    entities: eng.entitiesFor([principal, { uid: { type: 'Doc', id: 'd' }, attrs: {}, parents: [] }]),
  });
  assert.ok(answer?.ok, 'decided on the compiled path');
  return answer.value.decision;
}

describe('principal entities, built once per workload', () => {
  const none = new WorkloadGroups([]);

  it('are shared and deeply frozen, one per workload', () => {
    const eng = engine('red');
    const a1 = buildPrincipal(workload('spiffe://example.org/ns/a'), { engine: eng, groups: none });
    const a2 = buildPrincipal(workload('spiffe://example.org/ns/a'), { engine: eng, groups: none });
    const b = buildPrincipal(workload('spiffe://example.org/ns/b'), { engine: eng, groups: none });
    assert.equal(a1, a2);
    assert.notEqual(a1, b);
    for (const part of [a1, a1.uid, a1.attrs, a1.parents, ...a1.parents]) assert.ok(Object.isFrozen(part));
    assert.deepEqual(a1.attrs, { trustDomain: 'example.org', path: '/ns/a' });
    assert.deepEqual(b.attrs, { trustDomain: 'example.org', path: '/ns/b' });
    assert.deepEqual(parentIds(a1), ['Team::red']);
    assert.deepEqual(parentIds(b), []);
  });

  it('follow the policy version: a reload that moves the workload to another team is seen at once', () => {
    const red = engine('red');
    const blue = engine('blue');
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(parentIds(buildPrincipal(workload('spiffe://example.org/ns/a'), { engine: red, groups: none })), ['Team::red']);
      assert.deepEqual(parentIds(buildPrincipal(workload('spiffe://example.org/ns/a'), { engine: blue, groups: none })), ['Team::blue']);
      assert.equal(decide(red, none, 'spiffe://example.org/ns/a', 'read'), 'allow');
      assert.equal(decide(blue, none, 'spiffe://example.org/ns/a', 'read'), 'deny');
    }
  });

  it('follow the groups they are built with', () => {
    const eng = engine('red');
    const blocked = new WorkloadGroups([{ match: 'spiffe://example.org/ns/*', group: 'WorkloadGroup::"blocked"' }]);
    for (let i = 0; i < 3; i++) {
      assert.equal(decide(eng, none, 'spiffe://example.org/ns/a', 'read'), 'allow');
      assert.equal(decide(eng, blocked, 'spiffe://example.org/ns/a', 'read'), 'deny');
      assert.equal(decide(eng, none, 'spiffe://example.org/ns/a', 'path'), 'allow');
      assert.equal(decide(eng, none, 'spiffe://example.org/ns/b', 'path'), 'deny');
    }
  });
});
