// The decision pipeline: decode -> identify -> map -> evaluate. `respond` turns the result into
// a CheckResponse; the server and `mandate check` both call exactly this.

import { randomUUID } from 'node:crypto';
import type { MandateConfig } from '../config/types.js';
import { INLINE_EVALUATOR, type CedarRequest, type Evaluator, type PolicyEngine } from '../policy/engine.js';
import { decodeCheckRequest, type CheckRequestMessage } from './decode.js';
import type { Identifier, Identity } from './identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { mapRequest } from './map.js';
import type { ReasonCode } from './reasons.js';
import type { RouteTable } from './routes.js';
import { callApproved, countCall, resolveTask, taskContext, type TaskDeps } from './task.js';
import type { ToolTouch } from '../tasks/store.js';

export interface DecisionState {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly engine: PolicyEngine;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  /** null when task tokens are not enabled. */
  readonly tasks: TaskDeps | null;
  /** Inline on the main thread, or the worker pool (config evaluation.mode). */
  readonly evaluator: Evaluator;
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
  /** MCP routes: answer a deny as a JSON-RPC error to this id (docs/tool-calls.md). */
  readonly rpc: { readonly id: string | number | null; readonly errorCode: number | null; readonly denyStatus: 200 | 400 | 403 } | null;
  /** What Cedar answered (the last call evaluated), or null when the request never reached policy. */
  readonly policyDecision: 'allow' | 'deny' | null;
  /** The task the request ran under, when it carried a valid task token, and the user it acts for. */
  readonly taskId: string | null;
  readonly subject: string | null;
  /** Time spent in Cedar evaluation for this request, in microseconds (0 when it never got there). */
  readonly evaluationUs: number;
  /** approval_required: what approval would unlock the call. */
  readonly approval: { readonly task: string | null; readonly tool: string; readonly argumentsDigest: string | null } | null;
}

/** The registry's labels and egress flag for a tool (static entity Tool::"<tool>"), for the task history. */
function toolTouch(state: DecisionState, tool: string | null): ToolTouch | null {
  if (tool === null) return null;
  const attrs = state.engine.staticEntity({ type: 'Tool', id: tool })?.attrs ?? {};
  const labels = Array.isArray(attrs['labels']) ? attrs['labels'].filter((l): l is string => typeof l === 'string') : [];
  return { tool, labels, egress: attrs['egress'] === true };
}

export function createDecisionState(
  config: MandateConfig,
  routes: RouteTable,
  engine: PolicyEngine,
  identifier: Identifier,
  groups: WorkloadGroups,
  tasks: TaskDeps | null,
  evaluator: Evaluator = INLINE_EVALUATOR,
): DecisionState {
  return Object.freeze({ config, routes, engine, identifier, groups, tasks, evaluator });
}

/** `deadline`: epoch ms after which the caller (Envoy) has given up; Infinity when it set none. */
export async function decide(message: CheckRequestMessage, state: DecisionState, nowMs = Date.now(), deadline = Infinity): Promise<Decision> {
  const decisionId = randomUUID();
  const policyVersion = state.engine.version.version;
  const denied = (code: ReasonCode, msg: string | undefined, partial: Partial<Decision> = {}): Decision => ({
    decisionId, allowed: false, code, message: msg ?? null, identity: null, action: null, resource: null,
    determining: [], errors: [], policyVersion, cedar: null, rpc: null, approval: null, taskId: null, subject: null, evaluationUs: 0, policyDecision: null, ...partial,
  });
  try {
    // 1. decode
    const decoded = decodeCheckRequest(message, state.config.limits, Math.floor(nowMs / 1000));
    if (!decoded.ok) return denied(decoded.code, decoded.message);
    // 2. identify
    const identity = await state.identifier.identify(decoded.value, Math.floor(nowMs / 1000));
    if (!identity.ok) return denied(identity.code, identity.message);
    // 3. map (an MCP body may hold several calls: each is decided, all must be allowed)
    const mapped = mapRequest(decoded.value, identity.value, state);
    if (!mapped.ok) {
      const rpc = 'rpcCode' in mapped && mapped.rpcCode !== undefined ? { id: mapped.rpcId ?? null, errorCode: mapped.rpcCode, denyStatus: 400 as const } : null;
      return denied(mapped.code, mapped.message, { identity: identity.value, rpc });
    }
    const { cedar, calls, route } = mapped.value;
    const rpc = route.mcp === null ? null : { id: mapped.value.rpcId, errorCode: null, denyStatus: route.mcp.denyStatus };
    const about = { identity: identity.value, action: cedar.action.id, resource: `${cedar.resource.type}::"${cedar.resource.id}"`, cedar, rpc, taskId: null as string | null, subject: null as string | null, evaluationUs: 0 };
    // 4. task: the task token, its binding and the task's live state
    const task = await resolveTask(decoded.value, identity.value, mapped.value.match, state.tasks, Math.floor(nowMs / 1000));
    if (!task.ok) return denied(task.code, task.message, about);
    Object.assign(about, { taskId: task.value?.record.id ?? null, subject: task.value?.record.subject ?? null });
    // 5. evaluate
    let determining: readonly string[] = [];
    let errors: readonly string[] = [];
    for (const call of calls) {
      const context = call.cedar.context as Record<string, unknown>;
      if (task.value !== null) {
        context['task'] = taskContext(task.value, call.tool);
        if (context['mcp'] !== undefined) (context['mcp'] as Record<string, unknown>)['approved'] = callApproved(task.value, call.tool, call.argumentsDigest);
      }
      const callAbout = () => ({ ...about, action: call.cedar.action.id, resource: `${call.cedar.resource.type}::"${call.cedar.resource.id}"`, cedar: call.cedar });
      const evalStarted = process.hrtime.bigint();
      const evaluated = await state.evaluator.evaluate(state.engine, call.cedar, deadline);
      about.evaluationUs += Number(process.hrtime.bigint() - evalStarted) / 1000;
      if (!evaluated.ok) return denied(evaluated.code, evaluated.message, callAbout());
      ({ determining, errors } = evaluated.value);
      if (evaluated.value.decision !== 'allow') {
        // Every forbid that decided this deny is annotated @approval("..."): an approval would
        // unlock it, so say which. If any other policy also forbids it, an approval would not help.
        if (determining.length > 0 && determining.every((id) => state.engine.annotation(id, 'approval') !== undefined)) {
          const approval = { task: task.value?.record.id ?? null, tool: call.tool ?? call.cedar.action.id, argumentsDigest: call.argumentsDigest };
          return denied('approval_required', undefined, { ...callAbout(), determining, errors, approval, policyDecision: 'deny' });
        }
        const code = identity.value.kind === 'anonymous' ? 'unauthenticated' : 'policy_denied';
        return denied(code, undefined, { ...callAbout(), determining, errors, policyDecision: 'deny' });
      }
    }
    // 6. count each call against the task's budget and record it in the history, atomically,
    //    now that all are allowed
    if (task.value !== null && state.tasks !== null) {
      for (const call of calls) {
        const counted = await countCall(state.tasks.store, task.value, toolTouch(state, call.tool));
        if (!counted.ok) return denied(counted.code, counted.message, { ...about, determining, errors, policyDecision: 'allow' });
      }
    }
    return { decisionId, allowed: true, code: null, message: null, ...about, determining, errors, policyVersion, approval: null, policyDecision: 'allow' };
  } catch (err) {
    // A bug, not a decision: deny, and say so.
    return denied('internal_error', `unexpected error: ${(err as Error)?.message ?? String(err)}`);
  }
}
