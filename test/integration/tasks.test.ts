// Per-task credentials end to end over gRPC: start a task, call tools with its token, get an
// approval, end the task; and every attack from the task issue, each with its exact code.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { reasonOf } from '../helpers/tasks.js';
import { EVALUATION_PATHS } from '../../src/policy/engine.js';
import { BILLING_AGENT, SUPERVISOR, SUPPORT_AGENT, codeOf, decodeJwt, decodeProtectedHeader, startTaskFixture, type TaskFixture } from '../helpers/task-fixture.js';

describe('a task from start to end (memory store)', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  it('runs the whole flow: start, call, approval, end, denied', async () => {
    // 1. The agent asks for a task; policy grants two of the three tools it asked for.
    const started = await f.startTask({ tools: ['tickets.read', 'cases.refund', 'billing.refund-all'] });
    assert.deepEqual(started.grantedTools, ['tickets.read', 'cases.refund']);
    assert.deepEqual(started.deniedTools, ['billing.refund-all']);
    // 2. Its token follows the transaction tokens draft.
    const header = decodeProtectedHeader(started.token);
    assert.equal(header.typ, 'txntoken+jwt');
    assert.equal(header.alg, 'ES256');
    assert.equal(typeof header.kid, 'string');
    const claims = decodeJwt(started.token);
    assert.equal(claims.txn, started.taskId);
    assert.equal(claims.aud, 'example.org');
    assert.equal(claims.iss, 'mandate');
    assert.equal(claims['req_wl'], SUPPORT_AGENT);
    assert.equal(claims.sub, SUPPORT_AGENT);
    assert.equal(claims['scope'], 'refund for ticket T-1042');
    assert.deepEqual(claims['tctx'], { tenant: 'acme', tools: ['tickets.read', 'cases.refund'], maxCalls: 10, parent: null });
    assert.ok((claims.exp as number) - (claims.iat as number) <= 300, 'a short-lived token');
    // 3. A granted tool works; a tool that was not granted does not.
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1042', started.token)), null);
    assert.equal(codeOf(await f.call('POST', '/tickets/T-1042/comments', started.token)), 'policy_denied');
    // 4. The refund needs an approval...
    assert.equal(codeOf(await f.call('POST', '/cases/C-1/refunds', started.token)), 'policy_denied');
    const approval = await f.tasks.call('GrantApproval', { taskId: started.taskId, scope: 'cases.refund', ttlSeconds: 120 }, await f.svid(SUPERVISOR));
    assert.equal(approval['approver'], SUPERVISOR);
    // 5. ...and then goes through.
    assert.equal(codeOf(await f.call('POST', '/cases/C-1/refunds', started.token)), null);
    const task = await f.tasks.call('GetTask', { taskId: started.taskId }, await f.svid(SUPPORT_AGENT));
    assert.equal(task['calls'], 2);
    assert.equal((task['approvals'] as unknown[]).length, 1);
    // 6. The task ends: its token stops working at once.
    await f.tasks.call('EndTask', { taskId: started.taskId }, await f.svid(SUPPORT_AGENT));
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1042', started.token)), 'task_revoked');
  });

  it("decides the task API's policy questions (StartTask, GrantTool) on the compiled path, as Checks are", async () => {
    const before = { ...EVALUATION_PATHS };
    const started = await f.startTask({ tools: ['tickets.read', 'cases.refund', 'billing.refund-all'] });
    assert.deepEqual(started.grantedTools, ['tickets.read', 'cases.refund']);
    // StartTask, then GrantTool per tool asked for; none of them on cedar-wasm.
    assert.equal(EVALUATION_PATHS.compiled - before.compiled, 4);
    assert.equal(EVALUATION_PATHS.wasmInline - before.wasmInline, 0);
  });

  it('denies a route that requires a task when no token is sent', async () => {
    assert.equal(codeOf(await f.call('POST', '/cases/C-1/refunds', null)), 'task_required');
  });

  it('makes a token copied to another workload useless (token_binding_mismatch)', async () => {
    const { token } = await f.startTask();
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token, { principal: BILLING_AGENT })), 'token_binding_mismatch');
    const anonymous = await f.check.check({ attributes: { request: { http: { method: 'GET', path: '/tickets/T-1', headers: { 'txn-token': token, 'x-tenant-id': 'acme' } } } } });
    assert.equal(codeOf(anonymous), 'token_binding_mismatch');
  });

  it('keeps a task inside its tenant (tenant_mismatch)', async () => {
    const { token } = await f.startTask();
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token, { tenant: 'globex' })), 'tenant_mismatch');
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token, { tenant: null })), 'tenant_mismatch');
  });

  it('counts a budget raced by 50 concurrent calls exactly (budget_exhausted)', async () => {
    const { token } = await f.startTask({ maxCalls: 10, tools: ['tickets.read'] });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => f.call('GET', `/tickets/T-${i}`, token)));
    const codes = results.map(codeOf);
    assert.equal(codes.filter((c) => c === null).length, 10);
    assert.equal(codes.filter((c) => c === 'budget_exhausted').length, 40);
  });

  it('refuses an approval after it expires', async () => {
    const { token, taskId } = await f.startTask();
    // Expiry is in whole seconds: a 2-second approval is open for at least one full second.
    await f.tasks.call('GrantApproval', { taskId, scope: 'cases.refund', ttlSeconds: 2 }, await f.svid(SUPERVISOR));
    assert.equal(codeOf(await f.call('POST', '/cases/C-2/refunds', token)), null);
    await sleep(3100);
    assert.equal(codeOf(await f.call('POST', '/cases/C-2/refunds', token)), 'policy_denied');
  });

  it('does not let an approval for one task open another', async () => {
    const a = await f.startTask();
    const b = await f.startTask();
    await f.tasks.call('GrantApproval', { taskId: b.taskId, scope: 'cases.refund', ttlSeconds: 60 }, await f.svid(SUPERVISOR));
    assert.equal(codeOf(await f.call('POST', '/cases/C-3/refunds', a.token)), 'policy_denied');
    assert.equal(codeOf(await f.call('POST', '/cases/C-3/refunds', b.token)), null);
  });

  it('lets only approvers grant approvals, and closes a revoked one', async () => {
    const { token, taskId } = await f.startTask();
    await assert.rejects(f.tasks.call('GrantApproval', { taskId, scope: 'cases.refund', ttlSeconds: 60 }, await f.svid(SUPPORT_AGENT)), (e) => reasonOf(e) === 'policy_denied');
    const approval = await f.tasks.call('GrantApproval', { taskId, scope: 'cases.refund', ttlSeconds: 60 }, await f.svid(SUPERVISOR));
    assert.equal(codeOf(await f.call('POST', '/cases/C-4/refunds', token)), null);
    await f.tasks.call('RevokeApproval', { taskId, approvalId: approval['approvalId'] }, await f.svid(SUPERVISOR));
    assert.equal(codeOf(await f.call('POST', '/cases/C-4/refunds', token)), 'policy_denied');
  });

  describe('StartTask', () => {
    it('refuses an unauthenticated caller', async () => {
      await assert.rejects(f.tasks.call('StartTask', { purpose: 'p', tenant: 'acme', tools: ['tickets.read'] }), (e) => reasonOf(e) === 'unauthenticated' && (e as { code: number }).code === 16);
    });
    it('refuses a caller that policy does not let start tasks', async () => {
      await assert.rejects(f.startTask({}, BILLING_AGENT), (e) => reasonOf(e) === 'policy_denied' && (e as { code: number }).code === 7);
    });
    it('refuses a task for another tenant', async () => {
      await assert.rejects(f.startTask({ tenant: 'globex' }), (e) => reasonOf(e) === 'policy_denied');
    });
    it('refuses when policy grants none of the tools asked for', async () => {
      await assert.rejects(f.startTask({ tools: ['billing.refund-all'] }), (e) => reasonOf(e) === 'policy_denied');
    });
    it('refuses a request without a purpose', async () => {
      await assert.rejects(f.startTask({ purpose: '' }), (e) => reasonOf(e) === 'bad_request' && (e as { code: number }).code === 3);
    });
    it('never lets a delegated task hold more than its parent', async () => {
      const parent = await f.startTask({ tools: ['tickets.read'] });
      const child = await f.startTask({ tools: ['tickets.read', 'cases.refund'], parentTaskId: parent.taskId, parentToken: parent.token });
      assert.deepEqual(child.grantedTools, ['tickets.read']);
      assert.deepEqual(child.deniedTools, ['cases.refund']);
      const claims = decodeJwt(child.token);
      assert.equal(claims.sub, SUPPORT_AGENT);
      assert.deepEqual(claims['act'], { sub: SUPPORT_AGENT, act: { sub: SUPPORT_AGENT } });
      assert.ok(Number(child.taskExpiresAt) <= Number(parent.taskExpiresAt));
    });
  });

  describe('tokens that must not work', () => {
    const keys = () => f.server.runtime.tasks!.keys;
    const now = () => Math.floor(Date.now() / 1000);
    const forge = async (claims: Record<string, unknown>, header: Record<string, unknown> = {}) => {
      const key = keys().signingKey()!;
      return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'txntoken+jwt', kid: key.kid, ...header } as never).sign(key.privateKey);
    };
    const claimsFor = async () => {
      const { token } = await f.startTask();
      return decodeJwt(token) as Record<string, unknown>;
    };

    it('an expired token (token_expired)', async () => {
      const c = await claimsFor();
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', await forge({ ...c, iat: now() - 600, exp: now() - 60 }))), 'token_expired');
    });
    it('tampered claims (invalid_token)', async () => {
      const { token } = await f.startTask({ tools: ['tickets.read'] });
      const [h, p, s] = token.split('.');
      const claims = { ...(JSON.parse(Buffer.from(p!, 'base64url').toString()) as object), tctx: { tenant: 'acme', tools: ['tickets.read', 'tickets.comment'], maxCalls: null, parent: null } };
      const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
      assert.equal(codeOf(await f.call('POST', '/tickets/T-1/comments', tampered)), 'invalid_token');
    });
    it('typ missing or different (invalid_token)', async () => {
      const c = await claimsFor();
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', await forge(c, { typ: 'JWT' }))), 'invalid_token');
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', await forge(c, { typ: undefined }))), 'invalid_token');
    });
    it('alg none (invalid_token)', async () => {
      const c = await claimsFor();
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', `${b64({ alg: 'none', typ: 'txntoken+jwt' })}.${b64(c)}.`)), 'invalid_token');
    });
    it('a token whose task was ended: replay after EndTask (task_revoked)', async () => {
      const { token, taskId } = await f.startTask();
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token)), null);
      await f.tasks.call('EndTask', { taskId }, await f.svid(SUPPORT_AGENT));
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token)), 'task_revoked');
    });
    it('a token for a task the store never saw (task_revoked)', async () => {
      const c = await claimsFor();
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', await forge({ ...c, txn: 'no-such-task' }))), 'task_revoked');
    });
    it('a token signed by a key rotated out beyond the overlap (invalid_token), while one inside the overlap works', async () => {
      const inOverlap = await f.startTask();
      keys().rotate(3600);
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', inOverlap.token)), null, 'previous key still verifies during the overlap');
      const fresh = await f.startTask();
      assert.notEqual(decodeProtectedHeader(fresh.token).kid, decodeProtectedHeader(inOverlap.token).kid);
      // Rotating with no overlap retires the current key at once; the older key keeps its window.
      keys().rotate(0);
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', fresh.token)), 'invalid_token');
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', inOverlap.token)), null);
    });
  });
});

describe('task lifetimes', () => {
  it('caps a TTL above maxTaskTtlSeconds, and tokens never outlive their task', async () => {
    const f = await startTaskFixture('tasks:\n  store: memory\n  maxTaskTtlSeconds: 1200\n  tokenTtlSeconds: 600\n');
    try {
      const started = await f.startTask({ ttlSeconds: 99999 });
      const task = await f.tasks.call('GetTask', { taskId: started.taskId }, await f.svid(SUPPORT_AGENT));
      assert.equal(Number(task['expiresAt']) - Number(task['createdAt']), 1200);
      const short = await f.startTask({ ttlSeconds: 60 });
      assert.ok(Number(short.expiresAt) <= Number(short.taskExpiresAt));
      assert.equal(Number(short.taskExpiresAt) - Number(decodeJwt(short.token).iat), 60);
    } finally {
      await f.close();
    }
  });
});
