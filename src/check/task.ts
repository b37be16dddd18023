// Stage 3b: the task a request runs under. A request that carries a txn-token is checked:
// signature, typ, exp, aud and iss against our keys; binding (req_wl must be the workload
// identified for this request, so a copied token is useless elsewhere); the task's live state
// (ended, expired or unknown: task_revoked); the tenant the request targets; the budget. The
// call itself is counted only after the policy allows it (countCall), atomically.

import type { Context } from '../policy/cedar.js';
import type { TasksConfig } from '../config/tasks.js';
import { TXN_TOKEN_HEADER, type TxnTokenVerifier } from '../identity/txn-token.js';
import type { KeyRing } from '../tasks/keys.js';
import type { EndedTasks } from '../tasks/ended.js';
import { StateUnavailableError, type TaskState, type TaskStore, type ToolTouch } from '../tasks/store.js';
import type { DecodedRequest } from './decode.js';
import type { Identity } from './identify.js';
import { deny, ok, type Outcome } from './reasons.js';
import type { RouteMatch } from './routes.js';

export interface TaskDeps {
  readonly config: TasksConfig;
  readonly keys: KeyRing;
  readonly store: TaskStore;
  readonly ended: EndedTasks;
  readonly verifier: TxnTokenVerifier;
}

export async function resolveTask(request: DecodedRequest, identity: Identity, match: RouteMatch, deps: TaskDeps | null, now: number): Promise<Outcome<TaskState | null>> {
  const token = request.headers.get(TXN_TOKEN_HEADER);
  if (token === undefined) return match.route.requireTask ? deny('task_required') : ok(null);
  if (deps === null) return deny('invalid_token', 'transaction tokens are not enabled on this decision point');
  const claims = await deps.verifier.verify(token.trim(), now);
  if (!claims.ok) return claims;
  if (identity.kind === 'anonymous' || identity.spiffe.id !== claims.value.req_wl) {
    return deny('token_binding_mismatch', identity.kind === 'anonymous' ? 'the task token was presented without a workload identity' : undefined);
  }
  if (deps.ended.has(claims.value.txn)) return deny('task_revoked', 'the task has ended');
  let state: TaskState | null;
  try {
    state = await deps.store.getState(claims.value.txn, now);
  } catch (err) {
    if (err instanceof StateUnavailableError) return deny('state_unavailable');
    throw err;
  }
  if (state === null) return deny('task_revoked', 'unknown task');
  if (state.endedAt !== null) return deny('task_revoked', 'the task has ended');
  if (now >= state.record.expiresAt) return deny('task_revoked', 'the task has expired');
  if (state.record.workload !== claims.value.req_wl) return deny('token_binding_mismatch');

  const tenantFrom = deps.config.tenantFrom;
  if (tenantFrom !== null) {
    const target = 'header' in tenantFrom ? request.headers.get(tenantFrom.header) : match.params[tenantFrom.param];
    if (target === undefined || target === '') return deny('tenant_mismatch', 'the request names no tenant');
    if (target !== state.record.tenant) return deny('tenant_mismatch');
  }
  if (state.record.maxCalls !== null && state.calls >= state.record.maxCalls) return deny('budget_exhausted');
  return ok(state);
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

/** Whether an open approval covers this call: same tool, and either unbound or bound to these exact arguments. */
export function callApproved(state: TaskState, tool: string | null, digest: string | null): boolean {
  if (tool === null) return false;
  return state.approvals.some((a) => a.scope === tool && (a.argumentsDigest === null || a.argumentsDigest === digest));
}

/** Counts an allowed call against the task; the only writer of the budget on the Check path. */
export async function countCall(store: TaskStore, state: TaskState, touch: ToolTouch | null): Promise<Outcome<number>> {
  try {
    const r = await store.consumeCall(state.record.id, state.record.maxCalls, touch);
    if (r.ok) return ok(r.calls);
    return r.reason === 'exhausted' ? deny('budget_exhausted') : deny('task_revoked', 'the task has ended');
  } catch (err) {
    if (err instanceof StateUnavailableError) return deny('state_unavailable');
    throw err;
  }
}
