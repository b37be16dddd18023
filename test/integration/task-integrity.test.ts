// Task guardrails an agent cannot step around (issue #13), tried as a compromised agent would:
// leaving the token out, batching calls so that each is judged against the history from before
// the batch, and racing concurrent calls across two replicas on one Redis with the worker pool.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mint } from '../helpers/jwt.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { startReplicas, type Replicas } from '../helpers/replicas.js';
import { BILLING_AGENT, SUPPORT_AGENT, codeOf, startTaskFixture, type TaskFixture } from '../helpers/task-fixture.js';
import { checkRequest } from '../helpers/requests.js';
import { decide } from '../../src/check/pipeline.js';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { createTasksClient } from '../helpers/tasks.js';
import { mcpRequest, rpcDeny, toolCall } from '../helpers/mcp.js';
import type { CheckClient } from '../helpers/upstream.js';

const OLD_REVISION = '2025-06-18'; // batches exist before 2026-07-28
const HISTORY_TOOLS = ['support/get_ticket', 'support/web_fetch'];

interface TaskView {
  calls: number;
  historyCounts: Record<string, number>;
  historyLabels: string[];
  historyEgress: boolean;
}

describe('tool calls need a task', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  it('denies a REST tool call without a token with task_required (a comment no task was granted)', async () => {
    assert.equal(codeOf(await f.call('POST', '/tickets/T-1/comments', null)), 'task_required');
  });

  it('denies an MCP tools/call without a token with task_required, whatever the tool', async () => {
    for (const [name, args] of [['web_fetch', { url: 'https://paste.example/' }], ['get_ticket', { ticketId: 'T-1' }], ['create_case', { ticketId: 'T-1', summary: 'Call back' }]] as const) {
      assert.equal(rpcDeny(await f.check.check(mcpRequest(toolCall(1, name, args))))?.code, 'task_required', name);
    }
  });

  it('still answers what is not a tool call, and plain service routes, without a task', async () => {
    assert.equal(rpcDeny(await f.check.check(mcpRequest({ jsonrpc: '2.0', id: 1, method: 'tools/list' }))), null);
    assert.equal(codeOf(await f.call('GET', '/tickets/T-1', null)), null);
  });

  it('lets a task make the tool call it was refused without one', async () => {
    const { token } = await f.startTask({ tools: HISTORY_TOOLS });
    assert.equal(rpcDeny(await f.check.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token }))), null);
  });
});

describe('task denials name their task', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  it('puts the task id on task_revoked, token_binding_mismatch, tenant_mismatch and budget_exhausted decisions', async () => {
    const decideWith = (token: string, principal: string, tenant = 'acme') =>
      decide(checkRequest('GET', '/tickets/T-1', { principal, headers: { 'txn-token': token, 'x-tenant-id': tenant } }) as CheckRequestMessage, f.server.server.state());
    const { token, taskId } = await f.startTask({ tools: ['tickets.read'], maxCalls: 1 });
    const cases: [Promise<{ code: string | null; taskId: string | null }>, string][] = [
      [decideWith(token, BILLING_AGENT), 'token_binding_mismatch'],
      [decideWith(token, SUPPORT_AGENT, 'globex'), 'tenant_mismatch'],
    ];
    for (const [decision, code] of cases) {
      const d = await decision;
      assert.equal(d.code, code);
      assert.equal(d.taskId, taskId, code);
    }
    assert.equal((await decideWith(token, SUPPORT_AGENT)).code, null);
    const exhausted = await decideWith(token, SUPPORT_AGENT);
    assert.deepEqual([exhausted.code, exhausted.taskId], ['budget_exhausted', taskId]);
    await f.tasks.call('EndTask', { taskId }, await f.svid(SUPPORT_AGENT));
    const revoked = await decideWith(token, SUPPORT_AGENT);
    assert.deepEqual([revoked.code, revoked.taskId], ['task_revoked', taskId]);
  });
});

describe('what a task decision reads from the store', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  it('fetches the workload\'s history only for decisions whose policies read it', async () => {
    const store = f.server.runtime.tasks!.store;
    const read = store.getWorkloadHistory.bind(store);
    let fetched = 0;
    store.getWorkloadHistory = (workload, now) => {
      fetched++;
      return read(workload, now);
    };
    try {
      const { token } = await f.startTask({ tools: ['tickets.read', ...HISTORY_TOOLS] });
      assert.equal(codeOf(await f.call('GET', '/tickets/T-1', token)), null);
      assert.equal(fetched, 0, 'ticket reads: no policy reads the history');
      assert.equal(rpcDeny(await f.check.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token }))), null);
      assert.equal(fetched, 1, 'MCP tool calls: the exfiltration rule reads it');
    } finally {
      store.getWorkloadHistory = read;
    }
  });
});

describe('workload-wide history', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  it('denies egress from a fresh task after another task of the same workload read pii', async () => {
    const reader = await f.startTask({ tools: HISTORY_TOOLS });
    assert.equal(rpcDeny(await f.check.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token: reader.token }))), null);
    await f.tasks.call('EndTask', { taskId: reader.taskId }, await f.svid(SUPPORT_AGENT));
    const fresh = await f.startTask({ tools: HISTORY_TOOLS });
    const res = await f.check.check(mcpRequest(toolCall(2, 'web_fetch', { url: 'https://paste.example/' }), { token: fresh.token }));
    assert.equal(rpcDeny(res)?.code, 'policy_denied');
  });
});

describe('batches decide exactly, all or nothing', () => {
  let f: TaskFixture;
  before(async () => {
    f = await startTaskFixture();
  });
  after(async () => f.close());

  const view = async (taskId: string) => f.tasks.call<TaskView>('GetTask', { taskId }, await f.svid(SUPPORT_AGENT));
  const batch = (token: string, calls: unknown[]) => f.check.check(mcpRequest(calls, { token, protocolVersion: OLD_REVISION }));

  it('judges each call of a batch against the calls before it: [get_ticket, web_fetch] is the exfiltration chain', async () => {
    const { token, taskId } = await f.startTask({ tools: HISTORY_TOOLS });
    const denied = rpcDeny(await batch(token, [toolCall(1, 'get_ticket', { ticketId: 'T-1' }), toolCall(2, 'web_fetch', { url: 'https://paste.example/' })]));
    assert.equal(denied?.code, 'policy_denied');
    const state = await view(taskId);
    assert.equal(state.calls, 0, 'a denied batch spends no budget');
    assert.deepEqual(state.historyLabels ?? [], [], 'and writes no history');
    assert.deepEqual(state.historyCounts ?? {}, {});
  });

  it('denies a batch that would take the task past the 20-read rule, and records none of it', async () => {
    const { token, taskId } = await f.startTask({ tools: HISTORY_TOOLS, maxCalls: 100 });
    for (let i = 0; i < 15; i++) assert.equal(rpcDeny(await f.check.check(mcpRequest(toolCall(i, 'get_ticket', { ticketId: `T-${i}` }), { token }))), null);
    const six = Array.from({ length: 6 }, (_, i) => toolCall(100 + i, 'get_ticket', { ticketId: `T-${i}` }));
    assert.equal(rpcDeny(await batch(token, six))?.code, 'policy_denied', 'the 21st read, sixth in the batch, is denied');
    assert.equal((await view(taskId)).calls, 15);
    assert.equal(rpcDeny(await batch(token, six.slice(0, 5))), null, 'five more reads fit');
    assert.deepEqual((await view(taskId)).historyCounts, { 'support/get_ticket': 20 });
  });

  it('denies a batch larger than the budget left with budget_exhausted, and spends nothing', async () => {
    const { token, taskId } = await f.startTask({ tools: HISTORY_TOOLS, maxCalls: 2 });
    const three = Array.from({ length: 3 }, (_, i) => toolCall(i, 'get_ticket', { ticketId: `T-${i}` }));
    assert.equal(rpcDeny(await batch(token, three))?.code, 'budget_exhausted');
    assert.equal((await view(taskId)).calls, 0);
    assert.equal(rpcDeny(await batch(token, three.slice(0, 2))), null);
    assert.equal((await view(taskId)).calls, 2);
  });
});

describe('concurrent calls across two replicas on one Redis, with the worker pool', () => {
  let redis: RedisProcess;
  let r: Replicas;

  before(async () => {
    redis = await startRedis();
    r = await startReplicas(redis.url, 'race:', { evaluation: 'evaluation:\n  mode: pool\n  workers: 1\n' });
  });
  after(async () => {
    await r.close();
    await redis.stop();
  });

  it('allows exactly the one read left of the 20-read rule to 30 racing calls, and counts exactly', async () => {
    const tasksA = createTasksClient(r.a.address);
    const svid = await mint({ key: r.td.keys[0]!, sub: SUPPORT_AGENT });
    const { token, taskId } = await tasksA.call<{ token: string; taskId: string }>('StartTask', { purpose: 'race', tenant: 'acme', tools: HISTORY_TOOLS, ttlSeconds: 600 }, svid);
    const read = (client: CheckClient, id: number) => client.check(mcpRequest(toolCall(id, 'get_ticket', { ticketId: `T-${id}` }), { token }));
    for (let i = 0; i < 19; i++) assert.equal(rpcDeny(await read(i % 2 === 0 ? r.checkA : r.checkB, i)), null);
    const racing = await Promise.all(Array.from({ length: 30 }, (_, i) => read(i % 2 === 0 ? r.checkA : r.checkB, 100 + i)));
    const codes = racing.map((r) => rpcDeny(r)?.code ?? null);
    assert.equal(codes.filter((c) => c === null).length, 1, `allowed: ${codes.filter((c) => c === null).length}; codes: ${[...new Set(codes)].join(', ')}`);
    assert.equal(codes.filter((c) => c === 'policy_denied').length, 29);
    const state = await tasksA.call<TaskView>('GetTask', { taskId }, svid);
    assert.equal(state.calls, 20);
    assert.deepEqual(state.historyCounts, { 'support/get_ticket': 20 });
    tasksA.close();
  });

  it('keeps a budget exact under 30 racing calls on both replicas', async () => {
    const tasksB = createTasksClient(r.b.address);
    const svid = await mint({ key: r.td.keys[0]!, sub: SUPPORT_AGENT });
    const { token, taskId } = await tasksB.call<{ token: string; taskId: string }>('StartTask', { purpose: 'budget race', tenant: 'acme', tools: HISTORY_TOOLS, ttlSeconds: 600, maxCalls: 9 }, svid);
    const racing = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? r.checkA : r.checkB).check(mcpRequest(toolCall(i, 'get_ticket', { ticketId: `T-${i}` }), { token }))));
    const codes = racing.map((r) => rpcDeny(r)?.code ?? null);
    assert.equal(codes.filter((c) => c === null).length, 9);
    assert.equal(codes.filter((c) => c === 'budget_exhausted').length, 21);
    assert.equal((await tasksB.call<TaskView>('GetTask', { taskId }, svid)).calls, 9);
    tasksB.close();
  });

  it('denies egress from a fresh task on one replica after the workload read pii in another task on the other', async () => {
    const tasksA = createTasksClient(r.a.address);
    const svid = await mint({ key: r.td.keys[0]!, sub: SUPPORT_AGENT });
    const first = await tasksA.call<{ token: string; taskId: string }>('StartTask', { purpose: 'read', tenant: 'acme', tools: HISTORY_TOOLS, ttlSeconds: 600 }, svid);
    assert.equal(rpcDeny(await r.checkA.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token: first.token }))), null);
    const fresh = await tasksA.call<{ token: string; taskId: string }>('StartTask', { purpose: 'send', tenant: 'acme', tools: HISTORY_TOOLS, ttlSeconds: 600 }, svid);
    assert.equal(rpcDeny(await r.checkB.check(mcpRequest(toolCall(2, 'web_fetch', { url: 'https://paste.example/' }), { token: fresh.token })))?.code, 'policy_denied');
    tasksA.close();
  });

  it('decides a batch on one replica against calls recorded on the other', async () => {
    const tasksA = createTasksClient(r.a.address);
    const svid = await mint({ key: r.td.keys[0]!, sub: SUPPORT_AGENT });
    const { token, taskId } = await tasksA.call<{ token: string; taskId: string }>('StartTask', { purpose: 'batch across', tenant: 'acme', tools: HISTORY_TOOLS, ttlSeconds: 600 }, svid);
    assert.equal(rpcDeny(await r.checkA.check(mcpRequest(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token }))), null);
    const denied = await r.checkB.check(mcpRequest([toolCall(2, 'web_fetch', { url: 'https://paste.example/' })], { token, protocolVersion: OLD_REVISION }));
    assert.equal(rpcDeny(denied)?.code, 'policy_denied');
    assert.equal((await tasksA.call<TaskView>('GetTask', { taskId }, svid)).calls, 1);
    tasksA.close();
  });
});
