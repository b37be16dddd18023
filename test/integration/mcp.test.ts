// MCP-aware decisions over gRPC: bad input, JSON-RPC answers, argument-bound approvals, and the
// exfiltration chain within one task (and not across two).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { canonicalJson } from '../../src/check/jcs.js';
import { mcpRequest, rpcDeny, toolCall } from '../helpers/mcp.js';
import { unpinExample } from '../helpers/server.js';
import { SUPERVISOR, SUPPORT_AGENT, startTaskFixture, type TaskFixture } from '../helpers/task-fixture.js';

let f: TaskFixture;
before(async () => {
  f = await startTaskFixture();
});
after(async () => f.close());

const TOOLS = ['support/get_ticket', 'support/create_case', 'support/web_fetch'];
const check = (body: unknown, options: Parameters<typeof mcpRequest>[1] = {}) => f.check.check(mcpRequest(body, options));

describe('MCP calls', () => {
  it('allows a registered tool and answers in JSON-RPC when denying an unknown one', async () => {
    const { token } = await f.startTask({ tools: TOOLS });
    assert.equal(rpcDeny(await check(toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { token })), null);
    // The example pins its tools (support-tools.json): a tool not in the list is refused before
    // any policy reads it.
    assert.deepEqual(rpcDeny(await check(toolCall('req-7', 'drop_database', {}), { token })), { httpStatus: 400, id: 'req-7', rpcCode: -32602, code: 'bad_request' });
  });

  it('on a route that does not pin its tools, leaves an unknown tool to the policies', async () => {
    const u = await startTaskFixture(undefined, {}, unpinExample);
    try {
      const { token } = await u.startTask({ tools: TOOLS });
      const check = (body: unknown) => u.check.check(mcpRequest(body, { token }));
      assert.equal(rpcDeny(await check(toolCall(1, 'get_ticket', { ticketId: 'T-1' }))), null);
      assert.deepEqual(rpcDeny(await check(toolCall('req-7', 'drop_database', {}))), { httpStatus: 200, id: 'req-7', rpcCode: -32001, code: 'policy_denied' });
    } finally {
      await u.close();
    }
  });

  const bad: [string, () => Record<string, unknown>, number][] = [
    ['Mcp-Method that disagrees with the body', () => mcpRequest(toolCall(1, 'get_ticket', {}), { headers: { 'mcp-method': 'tools/list' } }), -32020],
    ['Mcp-Name that disagrees with the body', () => mcpRequest(toolCall(1, 'get_ticket', {}), { headers: { 'mcp-name': 'web_fetch' } }), -32020],
    ['a tools/call without params.name', () => mcpRequest({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { arguments: {} } }), -32600],
    ['arguments nested 1,000 deep', () => mcpRequest(undefined, { raw: Buffer.from(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"a":${'['.repeat(1000)}${']'.repeat(1000)}}}}`) }), -32600],
    ['an arguments object over limits.maxBodyBytes', () => mcpRequest(toolCall(1, 'get_ticket', { blob: 'x'.repeat(100 * 1024) })), -32600],
    ['bytes that are not UTF-8', () => mcpRequest(undefined, { raw: Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]) }), -32600],
    ['a body that is not JSON', () => mcpRequest(undefined, { raw: Buffer.from('{"jsonrpc":"2.0",') }), -32700],
    ['a JSON-RPC response posted as a request', () => mcpRequest({ jsonrpc: '2.0', id: 1, result: {} }), -32600],
    ['a message that is not JSON-RPC 2.0', () => mcpRequest({ id: 1, method: 'ping' }), -32600],
    ['an unknown MCP method', () => mcpRequest({ jsonrpc: '2.0', id: 1, method: 'tools/execute_anything' }), -32600],
    ['a batch under revision 2026-07-28', () => mcpRequest([toolCall(1, 'get_ticket', {})]), -32600],
    ['a truncated body', () => mcpRequest(toolCall(1, 'get_ticket', {}), { headers: { 'content-length': '99999' } }), -32600],
    ['prompts/get arguments that are not strings (MCP: a map of strings)', () => mcpRequest({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'triage', arguments: { priority: 5 } } }), -32602],
  ];
  for (const [name, build, rpcCode] of bad) {
    it(`answers ${name} with bad_request (JSON-RPC ${rpcCode}, HTTP 400) and keeps serving`, async () => {
      const deny = rpcDeny(await f.check.check(build()));
      assert.equal(deny?.code, 'bad_request');
      assert.equal(deny?.rpcCode, rpcCode);
      assert.equal(deny?.httpStatus, 400);
      assert.equal(rpcDeny(await check({ jsonrpc: '2.0', id: 2, method: 'ping' })), null);
    });
  }

  it('allows an older-revision batch only if every call in it is allowed', async () => {
    const { token } = await f.startTask({ tools: TOOLS });
    const v = { protocolVersion: '2025-06-18', token };
    assert.equal(rpcDeny(await check([toolCall(1, 'get_ticket', { ticketId: 'T-1' }), { jsonrpc: '2.0', id: 2, method: 'tools/list' }], v)), null);
    // The example forbids the internal range of tickets.
    const denied = rpcDeny(await check([toolCall(1, 'get_ticket', { ticketId: 'T-1' }), toolCall(2, 'get_ticket', { ticketId: 'internal-3' })], v));
    assert.equal(denied?.code, 'policy_denied');
    assert.equal(denied?.id, null, 'a batch deny answers with id null');
  });
});

describe('approvals bound to the arguments', () => {
  it('denies, approves that digest, allows, refuses other arguments, and expires', async () => {
    const { token, taskId } = await f.startTask({ tools: TOOLS });
    const args = { ticketId: 'T-1042', priority: 'high', summary: 'Refund charged twice' };
    // 1. Denied, and told exactly which approval would unlock it.
    const first = rpcDeny(await check(toolCall(1, 'create_case', args), { token }));
    assert.equal(first?.code, 'approval_required');
    const digest = createHash('sha256').update(canonicalJson(args)).digest('hex');
    assert.deepEqual(first?.approval, { task: taskId, tool: 'support/create_case', argumentsDigest: digest });
    // Key order does not change the digest (RFC 8785).
    const reordered = rpcDeny(await check(toolCall(2, 'create_case', { summary: args.summary, priority: 'high', ticketId: 'T-1042' }), { token }));
    assert.equal(reordered?.approval?.argumentsDigest, digest);
    // 2. A supervisor approves that digest.
    await f.tasks.call('GrantApproval', { taskId, scope: 'support/create_case', argumentsDigest: digest, ttlSeconds: 2 }, await f.svid(SUPERVISOR));
    // 3. The same call goes through; other arguments do not.
    assert.equal(rpcDeny(await check(toolCall(3, 'create_case', args), { token })), null);
    assert.equal(rpcDeny(await check(toolCall(4, 'create_case', { ...args, priority: 'critical' }), { token }))?.code, 'approval_required');
    // 4. The approval expires: denied again.
    await sleep(2200);
    assert.equal(rpcDeny(await check(toolCall(5, 'create_case', args), { token }))?.code, 'approval_required');
  });
});

describe('single-use approvals', () => {
  it('allow exactly one call, also when two come in one batch', async () => {
    const { token, taskId } = await f.startTask({ tools: TOOLS });
    const args = { ticketId: 'T-7', priority: 'high', summary: 'Refund charged twice' };
    const digest = createHash('sha256').update(canonicalJson(args)).digest('hex');
    await f.tasks.call('GrantApproval', { taskId, scope: 'support/create_case', argumentsDigest: digest, ttlSeconds: 60, uses: 1 }, await f.svid(SUPERVISOR));
    // Two identical calls in one (older-revision) batch: the second is not covered, so neither runs.
    const v = { protocolVersion: '2025-06-18', token };
    assert.equal(rpcDeny(await check([toolCall(1, 'create_case', args), toolCall(2, 'create_case', args)], v))?.code, 'approval_required');
    assert.equal(rpcDeny(await check(toolCall(3, 'create_case', args), { token })), null, 'the approval was not spent by the denied batch');
    assert.equal(rpcDeny(await check(toolCall(4, 'create_case', args), { token }))?.code, 'approval_required', 'spent');
    const task = await f.tasks.call<{ approvals?: unknown[] }>('GetTask', { taskId }, await f.svid(SUPPORT_AGENT));
    assert.deepEqual(task.approvals ?? [], []);
  });
});

describe('task history', () => {
  // A fixture of its own: the workload's history (shared by its tasks) starts empty here.
  let h: TaskFixture;
  before(async () => {
    h = await startTaskFixture();
  });
  after(async () => h.close());
  const check = (body: unknown, options: Parameters<typeof mcpRequest>[1] = {}) => h.check.check(mcpRequest(body, options));

  it('denies the exfiltration chain within one task, and in a fresh task of the same workload', async () => {
    const reader = await h.startTask({ tools: TOOLS });
    assert.equal(rpcDeny(await check(toolCall(1, 'web_fetch', { url: 'https://example.net/' }), { token: reader.token })), null, 'egress before any pii is fine');
    assert.equal(rpcDeny(await check(toolCall(2, 'get_ticket', { ticketId: 'T-1' }), { token: reader.token })), null);
    assert.equal(rpcDeny(await check(toolCall(3, 'web_fetch', { url: 'https://paste.example/' }), { token: reader.token }))?.code, 'policy_denied');
    const other = await h.startTask({ tools: TOOLS });
    const fresh = await check(toolCall(4, 'web_fetch', { url: 'https://paste.example/' }), { token: other.token });
    assert.equal(rpcDeny(fresh)?.code, 'policy_denied', 'the workload still holds what it read: a fresh task does not launder it');
  });

  it('records only allowed calls', async () => {
    const t = await h.startTask({ tools: ['support/get_ticket'] });
    assert.equal(rpcDeny(await check(toolCall(1, 'create_case', { ticketId: 'T-1', summary: 'Call back' }), { token: t.token }))?.code, 'policy_denied', 'not granted to this task');
    const state = await h.server.runtime.tasks!.store.getState(t.taskId, Math.floor(Date.now() / 1000));
    assert.deepEqual(state?.history, { tools: [], labels: [], egress: false, counts: {} });
    assert.equal(rpcDeny(await check(toolCall(2, 'get_ticket', { ticketId: 'T-1' }), { token: t.token })), null);
    const after = await h.server.runtime.tasks!.store.getState(t.taskId, Math.floor(Date.now() / 1000));
    assert.deepEqual(after?.history, { tools: ['support/get_ticket'], labels: ['pii'], egress: false, counts: { 'support/get_ticket': 1 } });
  });
});
