// The task API's logic: start a task (Cedar decides what is granted: Action::"StartTask" for
// the task, one Action::"GrantTool" per requested tool), end it, read it, and open or close
// time-bounded approvals. Transport-free: src/server/tasks.ts maps it to gRPC.

import { randomUUID } from 'node:crypto';
import { buildPrincipal, buildResource, type EntityInputs } from '../policy/principal.js';
import { deny, ok, type Outcome } from '../core/reasons.js';
import { issueTxnToken, type Actor } from '../identity/txn-token.js';
import type { Context } from '../policy/cedar.js';
import type { TaskDeps } from './deps.js';
import { StateUnavailableError, type Approval, type TaskRecord, type TaskState } from './store.js';
import type { Identity } from '../core/identity.js';
import type { CedarRequest, EntityUid } from '../core/cedar-request.js';

export interface StartTaskInput {
  readonly purpose: string;
  readonly tenant: string;
  readonly tools: readonly string[];
  readonly ttlSeconds: number;
  readonly maxCalls: number | null;
  readonly subject: string | null;
  /** RFC 8693 subject_token: a JWT from an issuer in tasks.subjectIssuers whose sub is the subject. */
  readonly subjectToken: string | null;
  readonly parentTaskId: string | null;
  /** Proof of the parent, when the caller started it: a live token of the parent task. */
  readonly parentToken: string | null;
}

export interface StartedTask {
  readonly token: string;
  readonly expiresAt: number;
  readonly task: TaskRecord;
  readonly deniedTools: readonly string[];
}

const NAME = /^[A-Za-z0-9._:/@ -]{1,200}$/;

export class TaskManager {
  constructor(
    /** The live policy version and pattern groups (the server's current state satisfies it). */
    private readonly state: () => EntityInputs,
    private readonly deps: TaskDeps,
  ) {}

  async start(caller: Identity, input: StartTaskInput, now: number): Promise<Outcome<StartedTask>> {
    if (caller.kind === 'anonymous') return deny('unauthenticated', 'StartTask needs a workload identity (a JWT-SVID in the authorization metadata)');
    const bad = validateStart(input);
    if (bad !== null) return deny('bad_request', bad);
    const cfg = this.deps.config;
    let parent: TaskState | null = null;
    if (input.parentTaskId !== null) {
      const p = await this.read(input.parentTaskId, now);
      if (!p.ok) return p;
      parent = p.value;
      if (parent.endedAt !== null || now >= parent.record.expiresAt) return deny('task_revoked', 'the parent task has ended');
      if (parent.record.tenant !== input.tenant) return deny('tenant_mismatch', 'a delegated task keeps its parent\'s tenant');
      const proven = await this.proveParent(caller, parent, input, now);
      if (!proven.ok) return proven;
    } else if (input.parentToken !== null) {
      return deny('bad_request', 'parentToken without parentTaskId');
    }
    // Who the task acts for comes from a verified subject token, never from the agent's word.
    let subject: string | null = null;
    if (input.subjectToken !== null) {
      if (this.deps.subjects === null) return deny('invalid_token', 'subject tokens are not accepted: no tasks.subjectIssuers are configured');
      const verified = await this.deps.subjects.verify(input.subjectToken, now);
      if (!verified.ok) return verified;
      if (input.subject !== null && input.subject !== verified.value.sub) return deny('bad_request', 'subject differs from the sub of the subject token');
      subject = verified.value.sub;
    } else if (input.subject !== null) {
      return deny('bad_request', 'a subject must come from a verified subject token (subjectToken, RFC 8693); it is not taken on the agent\'s word');
    }
    const ttl = Math.min(input.ttlSeconds > 0 ? input.ttlSeconds : cfg.defaultTaskTtlSeconds, cfg.maxTaskTtlSeconds);
    const expiresAt = Math.min(now + ttl, parent?.record.expiresAt ?? Infinity);
    const context: Context = {
      purpose: input.purpose,
      tenant: input.tenant,
      tools: [...input.tools],
      ttlSeconds: expiresAt - now,
      maxCalls: input.maxCalls ?? 0,
      subject: subject ?? '',
      parent: input.parentTaskId ?? '',
    };
    const tenant = { type: 'Tenant', id: input.tenant };
    const allowed = this.authorize(caller, 'StartTask', tenant, context);
    if (!allowed.ok) return allowed;
    // Policy-as-code at issuance: each tool is granted on its own; a delegated task can never
    // hold a tool its parent did not.
    const granted: string[] = [];
    const deniedTools: string[] = [];
    for (const tool of new Set(input.tools)) {
      const inParent = parent === null || parent.record.tools.includes(tool);
      if (inParent && this.authorize(caller, 'GrantTool', { type: 'Tool', id: tool }, context).ok) granted.push(tool);
      else deniedTools.push(tool);
    }
    if (input.tools.length > 0 && granted.length === 0) return deny('policy_denied', 'no requested tool was granted');
    const record: TaskRecord = {
      id: randomUUID(),
      purpose: input.purpose,
      tenant: input.tenant,
      tools: granted,
      subject,
      parent: input.parentTaskId,
      workload: caller.spiffe.id,
      maxCalls: input.maxCalls,
      createdAt: now,
      expiresAt,
    };
    try {
      await this.deps.store.createTask(record);
    } catch (err) {
      if (err instanceof StateUnavailableError) return deny('state_unavailable');
      throw err;
    }
    return ok({ ...(await this.token(record, caller, parent, now)), task: record, deniedTools });
  }

  /**
   * A child task needs proof of its parent. The parent's own workload proves it with a live token
   * of the parent task (so it is acting inside that task, not naming any task it once started);
   * another workload only when policy delegates the parent to it: Action::"DelegateTask" with the
   * caller as principal, the parent's workload as resource and the parent in the context.
   */
  private async proveParent(caller: Identity & { spiffe: { id: string } }, parent: TaskState, input: StartTaskInput, now: number): Promise<Outcome<void>> {
    if (parent.record.workload === caller.spiffe.id) {
      if (input.parentToken === null) return deny('invalid_token', 'a child task needs parentToken: a live token of the parent task');
      const claims = await this.deps.verifier.verify(input.parentToken.trim(), now);
      if (!claims.ok) return claims;
      if (claims.value.txn !== parent.record.id || claims.value.req_wl !== caller.spiffe.id) return deny('token_binding_mismatch', 'parentToken is not a token of the parent task for this workload');
      return ok(undefined);
    }
    const context: Context = { parentTaskId: parent.record.id, parentPurpose: parent.record.purpose, tenant: parent.record.tenant, tools: [...parent.record.tools] };
    const allowed = this.authorize(caller, 'DelegateTask', { type: 'Workload', id: parent.record.workload }, context);
    return allowed.ok ? allowed : deny('policy_denied', 'the parent task belongs to another workload, and no policy delegates it to the caller (Action::"DelegateTask")');
  }

  /** A fresh token for a live task, for the workload that started it. */
  async renew(caller: Identity, taskId: string, now: number): Promise<Outcome<{ token: string; expiresAt: number }>> {
    if (caller.kind === 'anonymous') return deny('unauthenticated', 'RenewToken needs a workload identity');
    const s = await this.owned(caller, taskId, now);
    if (!s.ok) return s;
    if (s.value.endedAt !== null || now >= s.value.record.expiresAt) return deny('task_revoked');
    const parent = s.value.record.parent === null ? null : await this.read(s.value.record.parent, now);
    return ok(await this.token(s.value.record, caller, parent?.ok ? parent.value : null, now));
  }

  async end(caller: Identity, taskId: string, now: number): Promise<Outcome<void>> {
    const s = await this.owned(caller, taskId, now, 'EndTask');
    if (!s.ok) return s;
    try {
      await this.deps.store.endTask(taskId, now);
    } catch (err) {
      if (err instanceof StateUnavailableError) return deny('state_unavailable');
      throw err;
    }
    return ok(undefined);
  }

  async get(caller: Identity, taskId: string, now: number): Promise<Outcome<TaskState>> {
    return this.owned(caller, taskId, now, 'GetTask');
  }

  async grantApproval(caller: Identity, input: { taskId: string; scope: string; ttlSeconds: number; argumentsDigest: string | null; uses: number | null }, now: number): Promise<Outcome<Approval>> {
    if (caller.kind === 'anonymous') return deny('unauthenticated', 'GrantApproval needs a workload identity');
    if (!NAME.test(input.scope)) return deny('bad_request', 'scope must name an action or tool');
    if (input.argumentsDigest !== null && !/^[0-9a-f]{64}$/.test(input.argumentsDigest)) return deny('bad_request', 'argumentsDigest must be a hex SHA-256 digest');
    if (input.uses !== null && (!Number.isInteger(input.uses) || input.uses < 1 || input.uses > 1_000_000)) return deny('bad_request', 'uses must be a positive integer');
    const s = await this.read(input.taskId, now);
    if (!s.ok) return s;
    if (s.value.endedAt !== null || now >= s.value.record.expiresAt) return deny('task_revoked');
    const ttl = Math.min(input.ttlSeconds > 0 ? input.ttlSeconds : this.deps.config.maxApprovalTtlSeconds, this.deps.config.maxApprovalTtlSeconds);
    const context: Context = { taskId: input.taskId, scope: input.scope, ttlSeconds: ttl, workload: s.value.record.workload, purpose: s.value.record.purpose };
    const allowed = this.authorize(caller, 'GrantApproval', { type: 'Tenant', id: s.value.record.tenant }, context);
    if (!allowed.ok) return allowed;
    const approval: Approval = {
      id: randomUUID(),
      taskId: input.taskId,
      scope: input.scope,
      approver: caller.spiffe.id,
      expiresAt: Math.min(now + ttl, s.value.record.expiresAt),
      argumentsDigest: input.argumentsDigest,
      uses: input.uses,
    };
    try {
      await this.deps.store.grantApproval(approval, s.value.record.expiresAt);
    } catch (err) {
      if (err instanceof StateUnavailableError) return deny('state_unavailable');
      throw err;
    }
    return ok(approval);
  }

  async revokeApproval(caller: Identity, taskId: string, approvalId: string, now: number): Promise<Outcome<void>> {
    if (caller.kind === 'anonymous') return deny('unauthenticated', 'RevokeApproval needs a workload identity');
    const s = await this.read(taskId, now);
    if (!s.ok) return s;
    const context: Context = { taskId, scope: s.value.approvals.find((a) => a.id === approvalId)?.scope ?? '', ttlSeconds: 0, workload: s.value.record.workload, purpose: s.value.record.purpose };
    const allowed = this.authorize(caller, 'GrantApproval', { type: 'Tenant', id: s.value.record.tenant }, context);
    if (!allowed.ok) return allowed;
    try {
      return (await this.deps.store.revokeApproval(taskId, approvalId)) ? ok(undefined) : deny('not_found', 'no such approval');
    } catch (err) {
      if (err instanceof StateUnavailableError) return deny('state_unavailable');
      throw err;
    }
  }

  private async token(record: TaskRecord, caller: Identity & { spiffe: { id: string } }, parent: TaskState | null, now: number): Promise<{ token: string; expiresAt: number }> {
    const cfg = this.deps.config;
    const exp = Math.min(now + cfg.tokenTtlSeconds, record.expiresAt);
    // RFC 8693 act: the agent acting for a subject, nesting the parent task's actor chain.
    let act: Actor | undefined;
    if (record.subject !== null || parent !== null) {
      act = { sub: caller.spiffe.id, ...(parent !== null ? { act: { sub: parent.record.workload } } : {}) };
    }
    const token = await issueTxnToken(
      this.deps.keys,
      cfg,
      {
        txn: record.id,
        sub: record.subject ?? record.workload,
        req_wl: record.workload,
        scope: record.purpose,
        tctx: { tenant: record.tenant, tools: record.tools, maxCalls: record.maxCalls, parent: record.parent },
        rctx: { authn: caller.kind },
        ...(act === undefined ? {} : { act }),
        exp,
      },
      now,
    );
    return { token, expiresAt: exp };
  }

  private async read(taskId: string, now: number): Promise<Outcome<TaskState>> {
    try {
      const s = await this.deps.store.getState(taskId, now);
      return s === null ? deny('not_found', 'no such task') : ok(s);
    } catch (err) {
      if (err instanceof StateUnavailableError) return deny('state_unavailable');
      throw err;
    }
  }

  /** The task, if the caller started it, or if policy lets the caller act on it (operators). */
  private async owned(caller: Identity, taskId: string, now: number, action?: string): Promise<Outcome<TaskState>> {
    if (caller.kind === 'anonymous') return deny('unauthenticated', 'the task API needs a workload identity');
    const s = await this.read(taskId, now);
    if (!s.ok) return s;
    if (s.value.record.workload === caller.spiffe.id) return s;
    if (action === undefined) return deny('token_binding_mismatch', 'only the workload that started the task may do this');
    const allowed = this.authorize(caller, action, { type: 'Tenant', id: s.value.record.tenant }, { taskId, workload: s.value.record.workload, purpose: s.value.record.purpose });
    return allowed.ok ? s : allowed;
  }

  private authorize(caller: Identity, action: string, resource: EntityUid, context: Context): Outcome<void> {
    const state = this.state();
    const principal = buildPrincipal(caller, state);
    const request: CedarRequest = {
      principal: principal.uid as EntityUid,
      action: { type: 'Action', id: action },
      resource,
      context,
      entities: state.engine.entitiesFor([principal, buildResource(resource, state)]),
    };
    // As a Check's call is evaluated: compiled when the request is proven to fit, else cedar-wasm.
    const r = state.engine.evaluateCompiled(request) ?? state.engine.evaluate(request);
    if (!r.ok) return r;
    return r.value.decision === 'allow' ? ok(undefined) : deny('policy_denied', `${action} denied by policy`);
  }
}

function validateStart(input: StartTaskInput): string | null {
  if (!NAME.test(input.purpose)) return 'purpose is required (up to 200 characters)';
  if (!NAME.test(input.tenant)) return 'tenant is required (up to 200 characters)';
  if (input.tools.length > 100) return 'at most 100 tools per task';
  for (const t of input.tools) if (!NAME.test(t)) return `tool "${t.slice(0, 40)}" is not a valid name`;
  if (input.subject !== null && !NAME.test(input.subject)) return 'subject is not a valid name';
  if (input.parentToken !== null && input.parentToken.length > 16384) return 'parentToken is too long';
  if (input.maxCalls !== null && (!Number.isInteger(input.maxCalls) || input.maxCalls < 1)) return 'maxCalls must be a positive integer';
  return null;
}
