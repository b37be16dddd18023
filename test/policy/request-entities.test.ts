// Sending a request only its own entities (ancestors flattened in) must decide exactly as
// sending every static entity: a differential test over the examples, re-issued as many
// principals; and the analysis must refuse policy sets that read other entities.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { decide, createDecisionState, type DecisionState } from '../../src/check/pipeline.js';
import { loadRuntime } from '../../src/cli/runtime.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { loadPolicyVersion } from '../../src/policy/loader.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../../src/server/protos.js';
import { copyExample, exampleRequests } from '../helpers/server.js';

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
});
