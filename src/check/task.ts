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
import { StateUnavailableError, type Approval, type RecordResult, type TaskHistory, type TaskState, type TaskStore, type ToolTouch, type WorkloadHistory } from '../tasks/store.js';
import { andThen, type MaybePromise } from '../core/maybe.js';
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

/** What resolveTask answers: the task's view (null when none is needed), or a deny naming the task when known. */
export type TaskResolution = Outcome<TaskView | null> & { readonly taskId?: string };

/**
 * `withHistory`: the decision reads what recorded calls change, the workload's history among it.
 * At once when the token is cached and the store answers from memory (core/maybe.ts).
 */
export function resolveTask(request: DecodedRequest, identity: Identity, requiresTask: boolean, deps: TaskDeps | null, now: number, withHistory: boolean): MaybePromise<TaskResolution> {
  const token = request.headers.get(TXN_TOKEN_HEADER);
  if (token === undefined) return requiresTask ? deny('task_required') : ok(null);
  if (deps === null) return deny('invalid_token', 'transaction tokens are not enabled on this decision point');
  return andThen(deps.verifier.verify(token.trim(), now), (claims): MaybePromise<TaskResolution> => {
    if (!claims.ok) return claims;
    // From here on a deny names the task it concerns (decision log, reviews).
    const taskId = claims.value.txn;
    const workload = claims.value.req_wl;
    if (identity.kind === 'anonymous' || identity.spiffe.id !== workload) {
      return { ...deny('token_binding_mismatch', identity.kind === 'anonymous' ? 'the task token was presented without a workload identity' : undefined), taskId };
    }
    if (deps.ended.has(taskId)) return { ...deny('task_revoked', 'the task has ended'), taskId };
    return andThen(readTaskView(deps.store, taskId, workload, now, withHistory), (view): TaskResolution => {
      if (!view.ok) return { ...view, taskId };
      if (view.value.task.record.workload !== workload) return { ...deny('token_binding_mismatch'), taskId };
      return view;
    });
  });
}

/** The task's state and, with `withHistory`, the workload's history, read at once. */
export function readTaskView(store: TaskStore, taskId: string, workload: string, now: number, withHistory: boolean): MaybePromise<Outcome<TaskView>> {
  // Most decisions: one read, without Promise.all's arrays and extra turns.
  if (!withHistory) return andThen(readTaskState(store, taskId, now), taskOnly);
  return Promise.all([readTaskState(store, taskId, now), readWorkloadHistory(store, workload, now)]).then(([task, history]) => {
    if (!task.ok) return task;
    if (!history.ok) return history;
    return ok({ task: task.value, workload: history.value });
  });
}

const taskOnly = (task: Outcome<TaskState>): Outcome<TaskView> => (task.ok ? ok({ task: task.value, workload: null }) : task);

/** A store's StateUnavailableError as state_unavailable; anything else is not ours to turn into a deny. */
function unavailable(err: unknown): Outcome<never> {
  if (err instanceof StateUnavailableError) return deny('state_unavailable');
  throw err;
}

/** A workload's recent history across its tasks (context.workload.history). */
export function readWorkloadHistory(store: TaskStore, workload: string, now: number): MaybePromise<Outcome<WorkloadHistory>> {
  let history: MaybePromise<WorkloadHistory>;
  try {
    history = store.getWorkloadHistory(workload, now);
  } catch (err) {
    return unavailable(err);
  }
  return history instanceof Promise ? history.then((h) => ok(h), unavailable) : ok(history);
}

/** The task's state from the store; an unknown task is task_revoked. */
export function readTaskState(store: TaskStore, taskId: string, now: number): MaybePromise<Outcome<TaskState>> {
  let state: MaybePromise<TaskState | null>;
  try {
    state = store.getState(taskId, now);
  } catch (err) {
    return unavailable(err);
  }
  return state instanceof Promise ? state.then(knownTask, unavailable) : knownTask(state);
}

const knownTask = (state: TaskState | null): Outcome<TaskState> => (state === null ? deny('task_revoked', 'unknown task') : ok(state));

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
export function recordCalls(store: TaskStore, decidedOn: TaskState, workload: WorkloadHistory | null, now: number, touches: readonly (ToolTouch | null)[], spend: readonly string[], compare: boolean): MaybePromise<Outcome<number> | { readonly ok: false; readonly code: 'conflict' }> {
  let r: MaybePromise<RecordResult>;
  try {
    r = store.recordCalls(decidedOn.record.id, compare ? decidedOn.calls : null, decidedOn.record.maxCalls, touches, { id: decidedOn.record.workload, version: compare && workload !== null ? workload.version : null, now }, spend);
  } catch (err) {
    return unavailable(err);
  }
  return r instanceof Promise ? r.then(recorded, unavailable) : recorded(r);
}

function recorded(r: RecordResult): Outcome<number> | { readonly ok: false; readonly code: 'conflict' } {
  if (r.ok) return ok(r.calls);
  if (r.reason === 'conflict') return { ok: false, code: 'conflict' };
  return r.reason === 'exhausted' ? deny('budget_exhausted') : deny('task_revoked', 'the task has ended');
}
