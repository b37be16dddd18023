// Stage 3b: the task a request runs under. A request that carries a txn-token is checked:
// signature, typ, exp, aud and iss against our keys; binding (req_wl must be the workload
// identified for this request, so a copied token is useless elsewhere); the task's live state
// (ended, expired or unknown: task_revoked); the tenant the request targets. Tool calls need a
// task unless their route says otherwise (task_required). The calls are recorded only after
// the policy allowed all of them, all at once, against the state they were decided on
// (recordCalls): a batch, or calls racing on several replicas, can never together pass a limit.

import type { Context } from '../policy/cedar.js';
import { TXN_TOKEN_HEADER } from '../identity/txn-token.js';
import type { TaskDeps } from '../tasks/deps.js';
import { StateUnavailableError, type Approval, type TaskHistory, type TaskState, type TaskStore, type ToolTouch, type WorkloadHistory } from '../tasks/store.js';
import type { DecodedRequest } from './decode.js';
import { deny, ok, type Outcome } from '../core/reasons.js';
import type { RouteMatch } from './routes.js';
import type { Identity } from '../core/identity.js';


/**
 * The task a request runs under: its token verified and bound to the identified workload, and
 * the task's state read. null when the request carries no token and needs none.
 */
/** A task's state and, when the decision reads it, its workload's history, read together. */
export interface TaskView {
  readonly task: TaskState;
  /** null when no policy of the decision reads it (history-reads.ts): it is not fetched then. */
  readonly workload: WorkloadHistory | null;
}

/** `withHistory`: the decision reads what recorded calls change, the workload's history among it. */
export async function resolveTask(request: DecodedRequest, identity: Identity, requiresTask: boolean, deps: TaskDeps | null, now: number, withHistory: boolean): Promise<Outcome<TaskView | null> & { readonly taskId?: string }> {
  const token = request.headers.get(TXN_TOKEN_HEADER);
  if (token === undefined) return requiresTask ? deny('task_required') : ok(null);
  if (deps === null) return deny('invalid_token', 'transaction tokens are not enabled on this decision point');
  const claims = await deps.verifier.verify(token.trim(), now);
  if (!claims.ok) return claims;
  // From here on a deny names the task it concerns (decision log, reviews).
  const taskId = claims.value.txn;
  if (identity.kind === 'anonymous' || identity.spiffe.id !== claims.value.req_wl) {
    return { ...deny('token_binding_mismatch', identity.kind === 'anonymous' ? 'the task token was presented without a workload identity' : undefined), taskId };
  }
  if (deps.ended.has(taskId)) return { ...deny('task_revoked', 'the task has ended'), taskId };
  const view = await readTaskView(deps.store, taskId, claims.value.req_wl, now, withHistory);
  if (!view.ok) return { ...view, taskId };
  if (view.value.task.record.workload !== claims.value.req_wl) return { ...deny('token_binding_mismatch'), taskId };
  return view;
}

/** The task's state and, with `withHistory`, the workload's history, read at once. */
export async function readTaskView(store: TaskStore, taskId: string, workload: string, now: number, withHistory: boolean): Promise<Outcome<TaskView>> {
  if (!withHistory) {
    // Most decisions: one read, without Promise.all's arrays and extra turns.
    const task = await readTaskState(store, taskId, now);
    return task.ok ? ok({ task: task.value, workload: null }) : task;
  }
  const [task, history] = await Promise.all([readTaskState(store, taskId, now), withHistory ? readWorkloadHistory(store, workload, now) : ok(null)]);
  if (!task.ok) return task;
  if (!history.ok) return history;
  return ok({ task: task.value, workload: history.value });
}

/** A workload's recent history across its tasks (context.workload.history). */
export async function readWorkloadHistory(store: TaskStore, workload: string, now: number): Promise<Outcome<WorkloadHistory>> {
  try {
    return ok(await store.getWorkloadHistory(workload, now));
  } catch (err) {
    if (err instanceof StateUnavailableError) return deny('state_unavailable');
    throw err;
  }
}

/** The task's state from the store; an unknown task is task_revoked. */
export async function readTaskState(store: TaskStore, taskId: string, now: number): Promise<Outcome<TaskState>> {
  let state: TaskState | null;
  try {
    state = await store.getState(taskId, now);
  } catch (err) {
    if (err instanceof StateUnavailableError) return deny('state_unavailable');
    throw err;
  }
  return state === null ? deny('task_revoked', 'unknown task') : ok(state);
}

/** Whether a task in this state may run this request: live, and for the tenant it targets. */
export function checkTaskState(state: TaskState, request: DecodedRequest, match: RouteMatch, deps: TaskDeps, now: number): Outcome<TaskState> {
  if (state.endedAt !== null) return deny('task_revoked', 'the task has ended');
  if (now >= state.record.expiresAt) return deny('task_revoked', 'the task has expired');
  const tenantFrom = deps.config.tenantFrom;
  if (tenantFrom !== null) {
    const target = 'header' in tenantFrom ? request.headers.get(tenantFrom.header) : match.params[tenantFrom.param];
    if (target === undefined || target === '') return deny('tenant_mismatch', 'the request names no tenant');
    if (target !== state.record.tenant) return deny('tenant_mismatch');
  }
  return ok(state);
}

/** A history after one more call that used `touch`: how the next call of a batch sees it. */
export function historyAfter<H extends TaskHistory>(h: H, touch: ToolTouch | null): H {
  if (touch === null) return h;
  return {
    ...h,
    tools: h.tools.includes(touch.tool) ? h.tools : [...h.tools, touch.tool],
    labels: [...new Set([...h.labels, ...touch.labels])],
    egress: h.egress || touch.egress,
    counts: { ...h.counts, [touch.tool]: (h.counts[touch.tool] ?? 0) + 1 },
  };
}

/** The task after one more allowed call that used `touch`. */
export function afterCall(state: TaskState, touch: ToolTouch | null): TaskState {
  return { ...state, calls: state.calls + 1, history: historyAfter(state.history, touch) };
}

/** context.workload: what the workload did within the window, across its tasks. */
export function workloadContext(history: WorkloadHistory, tool: string | null): Context {
  return { history: { tools: [...history.tools], labels: [...history.labels], egress: history.egress, toolCalls: tool === null ? 0 : (history.counts[tool] ?? 0) } };
}

/**
 * context.task, as docs/tasks.md describes it, for a call that uses `tool`. `approved` holds the
 * scopes of approvals that are not bound to arguments; an argument-bound approval only ever
 * shows as context.mcp.approved on the one call whose arguments it names.
 */
export function taskContext(state: TaskState, tool: string | null): Context {
  const r = state.record;
  const h = state.history;
  return {
    id: r.id,
    purpose: r.purpose,
    tenant: r.tenant,
    tools: [...r.tools],
    subject: r.subject ?? '',
    parent: r.parent ?? '',
    calls: state.calls,
    approvals: state.approvals.map((a) => ({ scope: a.scope, expiresAt: a.expiresAt, approver: a.approver, argumentsDigest: a.argumentsDigest ?? '' })),
    approved: [...new Set(state.approvals.filter((a) => a.argumentsDigest === null).map((a) => a.scope))],
    history: { tools: [...h.tools], labels: [...h.labels], egress: h.egress, toolCalls: tool === null ? 0 : (h.counts[tool] ?? 0) },
  };
}

/**
 * The open approval that covers this call: same tool, and either unbound or bound to these exact
 * arguments; an uncounted one before a counted one, so that a single-use approval is spent only
 * when nothing else covers the call.
 */
export function approvalFor(state: TaskState, tool: string | null, digest: string | null): Approval | null {
  if (tool === null) return null;
  const covering = state.approvals.filter((a) => a.scope === tool && (a.argumentsDigest === null || a.argumentsDigest === digest));
  return covering.find((a) => a.uses === null) ?? covering[0] ?? null;
}

/** The task after an allowed call spent one use of a counted approval. */
export function afterSpending(state: TaskState, approval: Approval): TaskState {
  const left = (approval.uses ?? 1) - 1;
  return { ...state, approvals: left > 0 ? state.approvals.map((a) => (a.id === approval.id ? { ...a, uses: left } : a)) : state.approvals.filter((a) => a.id !== approval.id) };
}

/**
 * Records the calls of one allowed decision against the task it was decided on (`decidedOn`):
 * the only writer of the budget and the history on the Check path. With `compare`, `conflict`
 * means another call changed the task since; the caller decides again on the new state.
 */
export async function recordCalls(store: TaskStore, decidedOn: TaskState, workload: WorkloadHistory | null, now: number, touches: readonly (ToolTouch | null)[], spend: readonly string[], compare: boolean): Promise<Outcome<number> | { readonly ok: false; readonly code: 'conflict' }> {
  try {
    const r = await store.recordCalls(decidedOn.record.id, compare ? decidedOn.calls : null, decidedOn.record.maxCalls, touches, { id: decidedOn.record.workload, version: compare && workload !== null ? workload.version : null, now }, spend);
    if (r.ok) return ok(r.calls);
    if (r.reason === 'conflict') return { ok: false, code: 'conflict' };
    return r.reason === 'exhausted' ? deny('budget_exhausted') : deny('task_revoked', 'the task has ended');
  } catch (err) {
    if (err instanceof StateUnavailableError) return deny('state_unavailable');
    throw err;
  }
}
