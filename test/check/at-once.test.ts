// A Check decided from memory is answered in the same turn (check/pipeline.ts decideNow,
// core/maybe.ts): cached tokens, the memory task store and inline evaluation answer at once, and
// only a step that waits (a token seen for the first time, a store that answers with promises)
// makes the decision a promise. Either way the decision is the same, and a store's failure,
// thrown or rejected, is state_unavailable.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startScenarioInProcess, type InProcessScenario } from '../../bench/scenario-in-process.js';
import { EXAMPLE_POLICIES } from '../../bench/scenario.js';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { createDecisionState, decideNow, type DecisionState } from '../../src/check/pipeline.js';
import type { Decision } from '../../src/core/decision.js';
import { decodeCheckRequestBytes } from '../../src/server/protos.js';
import { StateUnavailableError, type TaskStore } from '../../src/tasks/store.js';

const message = (s: InProcessScenario, tenant?: string): CheckRequestMessage => {
  // The served codec's headers are a Map (server/codec.ts).
  const m = decodeCheckRequestBytes(s.bytes) as { attributes: { request: { http: { headers: Map<string, string> } } } };
  if (tenant !== undefined) m.attributes.request.http.headers.set('x-tenant-id', tenant);
  return m as unknown as CheckRequestMessage;
};

/** The decision with the task store replaced by `store` (the same tasks, read another way). */
function withStore(s: InProcessScenario, store: (real: TaskStore) => TaskStore): DecisionState {
  const st = s.state;
  const tasks = st.tasks as NonNullable<DecisionState['tasks']>;
  return createDecisionState(st.config, st.routes, st.engine, st.identifier, st.groups, { ...tasks, store: store(tasks.store) }, st.evaluator);
}

/** A view of `real` whose Check-path reads and writes answer as `how` says. */
function storeThat(real: TaskStore, how: (answer: () => unknown) => unknown): TaskStore {
  return new Proxy(real, {
    get(target, name, receiver) {
      const v = Reflect.get(target, name, receiver);
      if (name !== 'getState' && name !== 'recordCalls' && name !== 'getWorkloadHistory') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) => how(() => (v as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}

const summary = (d: Decision) => ({ allowed: d.allowed, code: d.code, taskId: d.taskId, determining: d.determining, action: d.action, resource: d.resource });

describe('a Check decided from memory is answered in the same turn', () => {
  it('answers with a promise the first time a token is seen, then at once, with the same decision', async () => {
    const s = await startScenarioInProcess(EXAMPLE_POLICIES);
    const first = decideNow(message(s), s.state);
    assert.ok(first instanceof Promise, 'the JWT-SVID and the task token are verified for the first time');
    const decided = await first;
    assert.equal(decided.allowed, true, `${decided.code}: ${decided.message}`);
    const again = decideNow(message(s), s.state);
    assert.ok(!(again instanceof Promise), 'both tokens cached, the memory store, compiled evaluation: no promise');
    assert.deepEqual(summary(again), summary(decided));
    assert.notEqual(again.decisionId, decided.decisionId);
    // A deny on the task's state is answered at once too.
    const elsewhere = decideNow(message(s, 'globex'), s.state);
    assert.ok(!(elsewhere instanceof Promise));
    assert.equal(elsewhere.code, 'tenant_mismatch');
    assert.equal(elsewhere.taskId, decided.taskId);
  });

  it('decides the same with a store that answers with promises, and then answers with a promise', async () => {
    const s = await startScenarioInProcess(EXAMPLE_POLICIES);
    await decideNow(message(s), s.state); // tokens cached
    const later = withStore(s, (real) => storeThat(real, (answer) => new Promise((ok) => setImmediate(() => ok(answer())))));
    const viaPromise = decideNow(message(s), later);
    assert.ok(viaPromise instanceof Promise);
    const atOnce = decideNow(message(s), s.state);
    assert.ok(!(atOnce instanceof Promise));
    assert.deepEqual(summary(await viaPromise), summary(atOnce));
    assert.equal(atOnce.allowed, true);
    const denied = await decideNow(message(s, 'globex'), later);
    assert.equal(denied.code, 'tenant_mismatch');
  });

  it('denies state_unavailable when the store fails, whether it throws or rejects, and internal_error on anything else it throws', async () => {
    const s = await startScenarioInProcess(EXAMPLE_POLICIES);
    await decideNow(message(s), s.state);
    const cases: [string, (answer: () => unknown) => unknown, string][] = [
      ['throws StateUnavailableError', () => { throw new StateUnavailableError('down'); }, 'state_unavailable'],
      ['rejects with StateUnavailableError', () => Promise.reject(new StateUnavailableError('down')), 'state_unavailable'],
      ['throws something else', () => { throw new TypeError('a bug'); }, 'internal_error'],
      ['rejects with something else', () => Promise.reject(new TypeError('a bug')), 'internal_error'],
    ];
    for (const [what, how, code] of cases) {
      const d = await decideNow(message(s), withStore(s, (real) => storeThat(real, how)));
      assert.equal(d.allowed, false, what);
      assert.equal(d.code, code, `${what}: ${d.message}`);
    }
    // The real store still serves.
    const after = decideNow(message(s), s.state);
    assert.ok(!(after instanceof Promise));
    assert.equal(after.allowed, true);
  });
});
