// Pinned MCP tools over gRPC (docs/tool-calls.md, "Pinned tools"): with `tools:` on the MCP
// route, a tools/call of a tool not in the pinned list, or with arguments its inputSchema refuses,
// is a bad_request (JSON-RPC -32602, HTTP 400) before any policy reads the arguments. Without
// the pin, "true" and true, "20" and 20, ["internal-0"] and "internal-0"-like strings reach the
// policy as tags that a tool may read as another value.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mcpRequest, rpcDeny, toolCall } from '../helpers/mcp.js';
import { startTaskFixture, type TaskFixture } from '../helpers/task-fixture.js';

const TOOLS_LIST = {
  tools: [
    {
      name: 'get_ticket',
      description: 'Read a ticket',
      inputSchema: {
        type: 'object',
        properties: {
          ticketId: { type: 'string', pattern: '^T-' },
          expand: { type: 'array', items: { enum: ['comments', 'history'] } },
          limit: { type: 'integer', minimum: 1 },
          dryRun: { type: 'boolean' },
          note: { anyOf: [{ type: 'string' }, { type: 'null' }], default: null },
          region: { type: 'string', 'x-mcp-header': 'Region' },
          priority: { type: 'integer', 'x-mcp-header': 'Priority' },
          target: { type: 'object', properties: { account: { type: 'string', 'x-mcp-header': 'Account' } } },
        },
        required: ['ticketId'],
        additionalProperties: false,
      },
    },
    { name: 'web_fetch', inputSchema: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'] } },
  ],
};

let f: TaskFixture;
let token: string;
before(async () => {
  // The example pins its MCP route to support-tools.json; the fixture replaces that file with
  // this test's list (web_fetch and dryRun added).
  f = await startTaskFixture(undefined, { 'support-tools.json': JSON.stringify(TOOLS_LIST) }, (dir) => {
    assert.match(readFileSync(join(dir, 'mandate.yaml'), 'utf8'), /protocol: mcp, server: support, tools: \.\/support-tools\.json \}/, 'the example pins its MCP route');
  });
  ({ token } = await f.startTask({ tools: ['support/get_ticket', 'support/create_case', 'support/web_fetch'], maxCalls: 0 }));
});
after(async () => f.close());

const call = (name: string, args: unknown, options: Parameters<typeof mcpRequest>[1] = {}) => f.check.check(mcpRequest(toolCall(7, name, args), { token, ...options }));

describe('pinned MCP tools', () => {
  it('allow a call whose arguments conform, as the policies decide it', async () => {
    assert.equal(rpcDeny(await call('get_ticket', { ticketId: 'T-1', expand: ['comments'], limit: 20, dryRun: true, note: null })), null);
    assert.equal(rpcDeny(await call('get_ticket', { ticketId: 'T-1', note: 'a string' })), null);
    // The policies still decide: the example forbids internal tickets.
    assert.equal(rpcDeny(await call('get_ticket', { ticketId: 'internal-7' }))?.code, 'policy_denied');
  });

  const refused: [string, string, unknown][] = [
    ['a boolean sent as a string', 'get_ticket', { ticketId: 'T-1', dryRun: 'true' }],
    ['a boolean sent as a number', 'get_ticket', { ticketId: 'T-1', dryRun: 0 }],
    ['an integer sent as a string', 'get_ticket', { ticketId: 'T-1', limit: '20' }],
    ['an integer sent with a fraction', 'get_ticket', { ticketId: 'T-1', limit: 20.5 }],
    ['a string sent as an array (the tag the internal-* rule does not match)', 'get_ticket', { ticketId: ['internal-0'] }],
    ['a string sent as an object', 'get_ticket', { ticketId: { id: 'internal-0' } }],
    ['a string sent as null', 'get_ticket', { ticketId: null }],
    ['a required argument left out', 'get_ticket', { limit: 1 }],
    ['an argument the schema does not list', 'get_ticket', { ticketId: 'T-1', includeInternal: true }],
    ['an array item out of its enum', 'get_ticket', { ticketId: 'T-1', expand: ['comments', 'secrets'] }],
    ['an optional argument of neither of its types', 'get_ticket', { ticketId: 'T-1', note: 5 }],
    ['a tool that is not in the pinned list', 'drop_database', {}],
    ['a tool the policies know but the pinned list does not', 'create_case', { summary: 'x' }],
  ];
  for (const [name, tool, args] of refused) {
    it(`refuse ${name}: bad_request, JSON-RPC -32602, HTTP 400, and keep serving`, async () => {
      const deny = rpcDeny(await call(tool, args));
      assert.deepEqual(deny, { httpStatus: 400, id: 7, rpcCode: -32602, code: 'bad_request' });
      assert.equal(rpcDeny(await call('get_ticket', { ticketId: 'T-2' })), null);
    });
  }

  it('say in the deny which argument and which rule', async () => {
    const res = await call('get_ticket', { ticketId: 'T-1', dryRun: 'false' });
    const body = JSON.parse(res.deniedResponse?.body ?? '{}') as { error: { message: string } };
    assert.match(body.error.message, /support\/get_ticket do not conform to its pinned inputSchema: params\.arguments\.dryRun must be a boolean \(got a string\)/);
    const unknown = JSON.parse((await call('drop_database', {})).deniedResponse?.body ?? '{}') as { error: { message: string } };
    assert.match(unknown.error.message, /"drop_database", which is not in the pinned tool list of the support server \(support-tools\.json\)/);
  });

  it('refuse a whole older-revision batch when one call in it does not conform', async () => {
    const batch = [toolCall(1, 'get_ticket', { ticketId: 'T-1' }), toolCall(2, 'web_fetch', { url: ['https://paste.example/'] })];
    const deny = rpcDeny(await f.check.check(mcpRequest(batch, { token, protocolVersion: '2025-06-18' })));
    assert.equal(deny?.code, 'bad_request');
    assert.equal(deny?.rpcCode, -32602);
    assert.equal(rpcDeny(await f.check.check(mcpRequest([toolCall(1, 'get_ticket', { ticketId: 'T-1' }), toolCall(2, 'web_fetch', { url: 'https://example.net/' })], { token, protocolVersion: '2025-06-18' })))?.code ?? null, 'policy_denied', 'the conforming batch goes on to the policies (the example forbids web_fetch after a ticket read)');
  });

  it('allow Mcp-Param headers that mirror the arguments (SEP-2243), in plain or Base64 form', async () => {
    const args = { ticketId: 'T-1', region: 'Zürich', priority: 3, target: { account: 'acct-7' } };
    const headers = { 'mcp-method': 'tools/call', 'mcp-name': 'get_ticket', 'mcp-param-region': `=?base64?${Buffer.from('Zürich').toString('base64')}?=`, 'mcp-param-priority': '3', 'mcp-param-account': 'acct-7' };
    assert.equal(rpcDeny(await call('get_ticket', args, { headers })), null);
    assert.equal(rpcDeny(await call('get_ticket', { ticketId: 'T-1', region: 'eu' }, { headers: { 'mcp-name': `=?base64?${Buffer.from('get_ticket').toString('base64')}?=` } })), null, 'a Base64 Mcp-Name');
  });

  const mismatched: [string, unknown, Record<string, string>][] = [
    ['a Mcp-Param header with another value than the argument', { ticketId: 'T-1', region: 'eu' }, { 'mcp-param-region': 'us' }],
    ['a Mcp-Param header for a nested argument that differs', { ticketId: 'T-1', target: { account: 'acct-7' } }, { 'mcp-param-account': 'acct-1' }],
    ['an integer header that is not the same number', { ticketId: 'T-1', priority: 3 }, { 'mcp-param-priority': '03' }],
    ['a Mcp-Param header for an argument the body does not set', { ticketId: 'T-1' }, { 'mcp-param-region': 'eu' }],
    ['a Mcp-Param header the tool does not declare', { ticketId: 'T-1' }, { 'mcp-param-tenant': 'acme' }],
    ['a Base64 Mcp-Param header that is not Base64', { ticketId: 'T-1', region: 'eu' }, { 'mcp-param-region': '=?base64?not base64?=' }],
    ['a Base64 Mcp-Name of another tool', { ticketId: 'T-1' }, { 'mcp-name': `=?base64?${Buffer.from('web_fetch').toString('base64')}?=` }],
  ];
  for (const [name, args, headers] of mismatched) {
    it(`refuse ${name}: bad_request, JSON-RPC -32020, HTTP 400`, async () => {
      assert.deepEqual(rpcDeny(await call('get_ticket', args, { headers })), { httpStatus: 400, id: 7, rpcCode: -32020, code: 'bad_request' });
    });
  }

  it('leave the other MCP methods to the policies', async () => {
    assert.equal(rpcDeny(await f.check.check(mcpRequest({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { token }))), null);
  });
});
