// The decision pipeline: decode -> identify -> map -> evaluate. `respond` turns the result into
// a CheckResponse; the server and `mandate check` both call exactly this.

import { METHOD_OVERRIDE_HEADERS, type MandateConfig } from '../config/types.js';
import { TXN_TOKEN_HEADER } from '../identity/txn-token.js';
import { DECISION_ID_HEADER, DRY_RUN_HEADER } from './respond.js';
import { INLINE_EVALUATOR, type Evaluator, type PolicyEngine } from '../policy/engine.js';
import { decodeCheckRequest, PATH_OVERRIDE_HEADERS, type CheckRequestMessage, type DecodeRules } from './decode.js';
import type { Identifier } from './identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { mapRequest, type MappedCall } from './map.js';
import { MCP_HEADERS } from './mcp.js';
import type { ReasonCode } from '../core/reasons.js';
import type { RouteTable } from './routes.js';
import { afterCall, afterSpending, approvalFor, checkTaskState, historyAfter, readTaskView, recordCalls, resolveTask, taskContext, workloadContext, type TaskView } from './task.js';
import type { TaskDeps } from '../tasks/deps.js';
import type { ToolTouch } from '../tasks/store.js';
import type { Decision, EvaluationPath } from '../core/decision.js';
import { randomId } from '../core/ids.js';

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
  /** decodeRulesFor(config). */
  readonly decodeRules: DecodeRules;
}


/** The registry's labels and egress flag for a tool (static entity Tool::"<tool>"), for the task history. */
function toolTouch(state: DecisionState, tool: string | null): ToolTouch | null {
  if (tool === null) return null;
  // Read once per tool and policy version (the static entities are the version's): frozen, shared.
  let touches = TOUCHES.get(state.engine);
  if (touches === undefined) TOUCHES.set(state.engine, (touches = new Map()));
  let touch = touches.get(tool);
  if (touch === undefined) {
    const attrs = state.engine.staticEntity({ type: 'Tool', id: tool })?.attrs ?? {};
    const labels = Array.isArray(attrs['labels']) ? attrs['labels'].filter((l): l is string => typeof l === 'string') : [];
    // Tools are the routes' and the MCP servers' (any name a client sends): bounded like the other per-version memos.
    if (touches.size >= TOUCHES_KEPT) touches.clear();
    touches.set(tool, (touch = Object.freeze({ tool, labels: Object.freeze(labels), egress: attrs['egress'] === true })));
  }
  return touch;
}

const TOUCHES = new WeakMap<PolicyEngine, Map<string, ToolTouch>>();
const TOUCHES_KEPT = 4096;

export function createDecisionState(
  config: MandateConfig,
  routes: RouteTable,
  engine: PolicyEngine,
  identifier: Identifier,
  groups: WorkloadGroups,
  tasks: TaskDeps | null,
  evaluator: Evaluator = INLINE_EVALUATOR,
): DecisionState {
  return Object.freeze({ config, routes, engine, identifier, groups, tasks, evaluator, decodeRules: decodeRulesFor(config) });
}

export function decodeRulesFor(config: MandateConfig): DecodeRules {
  return Object.freeze({ readHeaders: headerNamesRead(config), forwardedHost: config.forwardedHost });
}

/**
 * Every request header name Mandate reads, or sets on an allowed request, with this configuration:
 * decode refuses a lone header that an upstream reading "_" as "-" takes for one of them.
 */
export function headerNamesRead(config: MandateConfig): ReadonlySet<string> {
  const names = new Set<string>(['authorization', TXN_TOKEN_HEADER, 'x-forwarded-client-cert', 'content-type', 'content-length', 'content-encoding', ...MCP_HEADERS, ...METHOD_OVERRIDE_HEADERS, ...PATH_OVERRIDE_HEADERS, DECISION_ID_HEADER, DRY_RUN_HEADER]);
  for (const name of config.contextHeaders) names.add(name);
  if (config.principalHeader !== null) names.add(config.principalHeader);
  if (config.identity.jwtSvid !== null) names.add(config.identity.jwtSvid.header);
  const tenantFrom = config.tasks?.tenantFrom;
  if (tenantFrom != null && 'header' in tenantFrom) names.add(tenantFrom.header);
  if (config.forwardedHost === 'refuse') names.add('x-forwarded-host');
  return names;
}

/** `deadline`: epoch ms after which the caller (Envoy) has given up; Infinity when it set none. */
export async function decide(message: CheckRequestMessage, state: DecisionState, nowMs = Date.now(), deadline = Infinity): Promise<Decision> {
  const decisionId = randomId();
  const policyVersion = state.engine.version.version;
  const denied = (code: ReasonCode, msg: string | undefined, partial: Partial<Decision> = {}): Decision => ({
    decisionId, allowed: false, code, message: msg ?? null, identity: null, action: null, resource: null,
    determining: [], errors: [], policyVersion, cedar: null, rpc: null, approval: null, taskId: null, subject: null, evaluationUs: 0, evaluationPath: null, policyDecision: null, ...partial,
  });
  try {
    // 1. decode
    const decoded = decodeCheckRequest(message, state.config.limits, Math.floor(nowMs / 1000), state.decodeRules);
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
    const about = { identity: identity.value, action: cedar.action.id, resource: `${cedar.resource.type}::"${cedar.resource.id}"`, cedar, rpc, taskId: null as string | null, subject: null as string | null, evaluationUs: 0, evaluationPath: null as EvaluationPath | null };
    // 4. task: the task token, its binding and the task's state
    const nowSeconds = Math.floor(nowMs / 1000);
    // Whether the policies of these calls read what recorded calls change (history-reads.ts):
    // then the workload's history is fetched too, and the calls are recorded by compare-and-record.
    const dependent = calls.some((c) => state.engine.history.dependsOnHistory(c.cedar.action.id));
    const task = await resolveTask(decoded.value, identity.value, mapped.value.requiresTask, state.tasks, nowSeconds, dependent);
    if (!task.ok) return denied(task.code, task.message, { ...about, taskId: task.taskId ?? null });
    // An allow, field by field (every Check that is allowed builds one: a spread of `about` copied it generically).
    const verdict = (outcome: CallsOutcome): Decision => (outcome.ok
      ? {
          decisionId, allowed: true, code: null, message: null, identity: about.identity, action: about.action, resource: about.resource, cedar: about.cedar, rpc: about.rpc,
          taskId: about.taskId, subject: about.subject, evaluationUs: about.evaluationUs, evaluationPath: about.evaluationPath, determining: outcome.determining, errors: outcome.errors, policyVersion, approval: null, policyDecision: 'allow',
        }
      : denied(outcome.code, outcome.message, { ...about, ...outcome.about }));
    if (task.value === null || state.tasks === null) return verdict(await evaluateCalls(state, calls, null, about, deadline, identity.value.kind === 'anonymous'));
    // 5. evaluate every call in order, each against the task as the calls before it left it,
    // 6. then record them all at once against the state they were decided on. One decision at a
    //    time per task here; a conflict (another replica recorded calls meanwhile) decides again.
    const deps = state.tasks;
    const first = task.value;
    const taskId = first.task.record.id;
    about.taskId = taskId;
    about.subject = first.task.record.subject;
    const anonymous = identity.value.kind === 'anonymous';
    // One attempt: live checks, every call in order, then one record of them all. null: another
    // call changed the task since (compare-and-record said so): decide again on the new state.
    const attempt = async (view: TaskView, compare: boolean): Promise<Decision | null> => {
      const live = checkTaskState(view.task, decoded.value, mapped.value.match, deps, nowSeconds);
      if (!live.ok) return denied(live.code, live.message, about);
      const outcome = await evaluateCalls(state, calls, view, about, deadline, anonymous);
      if (!outcome.ok) return verdict(outcome);
      const recorded = await recordCalls(deps.store, view.task, view.workload, nowSeconds, outcome.touches, outcome.spend, compare);
      if (recorded.ok) return verdict(outcome);
      if (recorded.code === 'conflict') return null;
      return denied(recorded.code, recorded.message, { ...about, determining: outcome.determining, errors: outcome.errors, policyDecision: 'allow' });
    };
    // A decision that reads nothing recorded calls change (history-reads.ts) is recorded as it
    // is, in parallel with the task's other calls: the store keeps maxCalls and spends exact. Its
    // only conflict is a single-use approval another call spent meanwhile: decided again below.
    if (!dependent) {
      const decided = await attempt(first, false);
      if (decided !== null) return decided;
    }
    return await deps.locks.run(taskId, async (waited) => {
      // What resolveTask read is stale if another decision of this task ran meanwhile.
      let view = first;
      for (let n = 0; n < MAX_RECORD_ATTEMPTS; n++) {
        if (n > 0 || waited) {
          const reread = await readTaskView(deps.store, taskId, first.task.record.workload, nowSeconds, dependent);
          if (!reread.ok) return denied(reread.code, reread.message, about);
          view = reread.value;
        }
        const decided = await attempt(view, true);
        if (decided !== null) return decided;
        // Another replica recorded calls of this task since: after a short random pause, so that
        // two replicas do not keep colliding in step.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(n + 1, 5)));
      }
      return denied('state_unavailable', `the task's state changed under ${MAX_RECORD_ATTEMPTS} decisions in a row`, about);
    });
  } catch (err) {
    // A bug, not a decision: deny, and say so.
    return denied('internal_error', `unexpected error: ${(err as Error)?.message ?? String(err)}`);
  }
}

/** A decision taken again this many times in a row because other replicas kept recording calls
 *  of the same task is refused (state_unavailable) rather than retried without end. */
const MAX_RECORD_ATTEMPTS = 32;

type CallsOutcome =
  | { readonly ok: true; readonly determining: readonly string[]; readonly errors: readonly string[]; readonly touches: readonly (ToolTouch | null)[]; readonly spend: readonly string[] }
  | { readonly ok: false; readonly code: ReasonCode; readonly message?: string | undefined; readonly about: Partial<Decision> };

/**
 * Decides the calls of one request in order; all must be allowed. Within a task each call sees
 * the task as the calls before it would leave it (afterCall): its budget, its history, its
 * per-tool counts. Nothing is recorded here.
 */
async function evaluateCalls(state: DecisionState, calls: readonly MappedCall[], within: TaskView | null, about: { evaluationUs: number; evaluationPath: EvaluationPath | null }, deadline: number, anonymous: boolean): Promise<CallsOutcome> {
  let determining: readonly string[] = [];
  let errors: readonly string[] = [];
  const touches: (ToolTouch | null)[] = [];
  const spend: string[] = [];
  let sim = within?.task ?? null;
  let workload = within?.workload ?? null;
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i] as MappedCall;
    // What the task looks like after this call is only needed by the calls after it.
    const more = i < calls.length - 1;
    const callAbout = { action: call.cedar.action.id, resource: `${call.cedar.resource.type}::"${call.cedar.resource.id}"`, cedar: call.cedar };
    const context = call.cedar.context as Record<string, unknown>;
    if (sim !== null) {
      if (sim.record.maxCalls !== null && sim.calls >= sim.record.maxCalls) return { ok: false, code: 'budget_exhausted', about: callAbout };
      context['task'] = taskContext(sim, call.tool);
      // Only when a policy of the call reads it (else it was not fetched): history-reads.ts.
      if (workload !== null) context['workload'] = workloadContext(workload, call.tool);
      if (context['mcp'] !== undefined) (context['mcp'] as Record<string, unknown>)['approved'] = approvalFor(sim, call.tool, call.argumentsDigest) !== null;
    }
    const evalStarted = process.hrtime.bigint();
    const evaluated = await state.evaluator.evaluate(state.engine, call.cedar, deadline);
    about.evaluationUs += Number(process.hrtime.bigint() - evalStarted) / 1000;
    if (evaluated.ok) about.evaluationPath = evaluated.value.path;
    if (!evaluated.ok) return { ok: false, code: evaluated.code, message: evaluated.message, about: callAbout };
    ({ determining, errors } = evaluated.value);
    if (evaluated.value.decision !== 'allow') {
      const deniedAbout = { ...callAbout, determining, errors, policyDecision: 'deny' as const };
      // Every forbid that decided this deny is annotated @approval("..."): an approval would
      // unlock it, so say which. If any other policy also forbids it, an approval would not help.
      if (determining.length > 0 && determining.every((id) => state.engine.annotation(id, 'approval') !== undefined)) {
        const approval = { task: sim?.record.id ?? null, tool: call.tool ?? call.cedar.action.id, argumentsDigest: call.argumentsDigest };
        return { ok: false, code: 'approval_required', about: { ...deniedAbout, approval } };
      }
      return { ok: false, code: anonymous ? 'unauthenticated' : 'policy_denied', about: deniedAbout };
    }
    const touch = toolTouch(state, call.tool);
    touches.push(touch);
    if (sim !== null) {
      // An allowed call that a counted approval covers spends one use of it (single-use approvals).
      const approval = approvalFor(sim, call.tool, call.argumentsDigest);
      if (approval !== null && approval.uses !== null) {
        spend.push(approval.id);
        if (more) sim = afterSpending(sim, approval);
      }
      if (more) sim = afterCall(sim, touch);
    }
    if (workload !== null && more) workload = historyAfter(workload, touch);
  }
  return { ok: true, determining, errors, touches, spend };
}
