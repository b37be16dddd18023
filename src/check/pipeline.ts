// The decision pipeline: decode -> identify -> map -> evaluate. `respond` turns the result into
// a CheckResponse; the server and `mandate check` both call exactly this.

import { randomUUID } from 'node:crypto';
import type { MandateConfig } from '../config/types.js';
import type { CedarRequest, PolicyEngine } from '../policy/engine.js';
import { decodeCheckRequest, type CheckRequestMessage } from './decode.js';
import type { Identifier, Identity } from './identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { mapRequest } from './map.js';
import type { ReasonCode } from './reasons.js';
import type { RouteTable } from './routes.js';
import { countCall, resolveTask, taskContext, type TaskDeps } from './task.js';

export interface DecisionState {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly engine: PolicyEngine;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  /** null when task tokens are not enabled. */
  readonly tasks: TaskDeps | null;
}

export interface Decision {
  readonly decisionId: string;
  readonly allowed: boolean;
  /** null exactly when allowed. */
  readonly code: ReasonCode | null;
  readonly message: string | null;
  readonly identity: Identity | null;
  readonly action: string | null;
  readonly resource: string | null;
  readonly determining: readonly string[];
  readonly errors: readonly string[];
  readonly policyVersion: string;
  /** The Cedar request, kept for --explain and the decision log. */
  readonly cedar: CedarRequest | null;
}

export function createDecisionState(
  config: MandateConfig,
  routes: RouteTable,
  engine: PolicyEngine,
  identifier: Identifier,
  groups: WorkloadGroups,
  tasks: TaskDeps | null,
): DecisionState {
  return Object.freeze({ config, routes, engine, identifier, groups, tasks });
}

export async function decide(message: CheckRequestMessage, state: DecisionState, nowMs = Date.now()): Promise<Decision> {
  const decisionId = randomUUID();
  const policyVersion = state.engine.version.version;
  const denied = (code: ReasonCode, msg: string | undefined, partial: Partial<Decision> = {}): Decision => ({
    decisionId, allowed: false, code, message: msg ?? null, identity: null, action: null, resource: null,
    determining: [], errors: [], policyVersion, cedar: null, ...partial,
  });
  try {
    // 1. decode
    const decoded = decodeCheckRequest(message, state.config.limits, Math.floor(nowMs / 1000));
    if (!decoded.ok) return denied(decoded.code, decoded.message);
    // 2. identify
    const identity = await state.identifier.identify(decoded.value);
    if (!identity.ok) return denied(identity.code, identity.message);
    // 3. map
    const mapped = mapRequest(decoded.value, identity.value, state);
    if (!mapped.ok) return denied(mapped.code, mapped.message, { identity: identity.value });
    const { cedar } = mapped.value;
    const about = { identity: identity.value, action: cedar.action.id, resource: `${cedar.resource.type}::"${cedar.resource.id}"`, cedar };
    // 4. task: the task token, its binding and the task's live state
    const task = await resolveTask(decoded.value, identity.value, mapped.value.match, state.tasks, Math.floor(nowMs / 1000));
    if (!task.ok) return denied(task.code, task.message, about);
    if (task.value !== null) (cedar.context as Record<string, unknown>)['task'] = taskContext(task.value);
    // 5. evaluate
    const evaluated = state.engine.evaluate(cedar);
    if (!evaluated.ok) return denied(evaluated.code, evaluated.message, about);
    const { decision, determining, errors } = evaluated.value;
    if (decision !== 'allow') {
      const code = identity.value.kind === 'anonymous' ? 'unauthenticated' : 'policy_denied';
      return denied(code, undefined, { ...about, determining, errors });
    }
    // 6. count the call against the task's budget, atomically, now that it is allowed
    if (task.value !== null && state.tasks !== null) {
      const counted = await countCall(state.tasks.store, task.value);
      if (!counted.ok) return denied(counted.code, counted.message, { ...about, determining, errors });
    }
    return { decisionId, allowed: true, code: null, message: null, ...about, determining, errors, policyVersion };
  } catch (err) {
    // A bug, not a decision: deny, and say so.
    return denied('internal_error', `unexpected error: ${(err as Error)?.message ?? String(err)}`);
  }
}
