// The performance scenario (scenario.ts) ready to decide in this process: its runtime loaded,
// the caller identified by its JWT-SVID, a task started through the task manager, and the
// CheckRequest bytes that carry the task's token. Shared by bench/run.ts and bench/allocations.ts.

import { loadRuntime, type Runtime } from '../src/cli/runtime.js';
import { decodeCheckRequest, type CheckRequestMessage } from '../src/check/decode.js';
import type { DecisionState } from '../src/check/pipeline.js';
import { TaskManager } from '../src/tasks/manager.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../src/server/protos.js';
import { SCENARIO_TASK, writeScenario, EXAMPLE_POLICIES } from './scenario.js';

export interface InProcessScenario {
  readonly policies: number;
  readonly runtime: Runtime;
  readonly state: DecisionState;
  /** The CheckRequest, as Envoy would send it, with the task's token. */
  readonly bytes: Buffer;
}

export async function startScenarioInProcess(policies = 1000): Promise<InProcessScenario> {
  const scenario = writeScenario(policies - EXAMPLE_POLICIES);
  const runtime = loadRuntime(scenario.config, { mode: 'serve' });
  runtime.tasks?.keys.ensureSigningKey();
  const state = runtime.state();
  const caller = decodeCheckRequest(decodeCheckRequestBytes(encodeCheckRequest(scenario.checkRequest('unused'))) as CheckRequestMessage, state.config.limits, 0);
  if (!caller.ok) throw new Error('the scenario request does not decode');
  const identity = await state.identifier.identify(caller.value, Math.floor(Date.now() / 1000));
  if (!identity.ok) throw new Error(`the scenario caller is not identified: ${identity.message}`);
  const started = await new TaskManager(() => state, runtime.tasks as NonNullable<typeof runtime.tasks>).start(
    identity.value,
    { ...SCENARIO_TASK, maxCalls: null, subject: null, subjectToken: null, parentTaskId: null, parentToken: null },
    Math.floor(Date.now() / 1000),
  );
  if (!started.ok) throw new Error(`the scenario task did not start: ${started.message}`);
  return { policies: scenario.policies, runtime, state, bytes: encodeCheckRequest(scenario.checkRequest(started.value.token)) };
}
