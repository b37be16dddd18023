// One request, one reading (issue #12): every request below was allowed, or decided on a reading
// other than the upstream's, before the strict JSON reader and the path rules. Each is decided
// through the whole pipeline on the embedded example and must now be refused with the exact
// code (bad_request; JSON-RPC -32600/-32700 on the MCP route), while its honest twin still
// gets the answer it always got.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { decide } from '../../src/check/pipeline.js';
import { decodeCheckRequest, type CheckRequestMessage } from '../../src/check/decode.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { exampleWith } from '../helpers/server.js';
import { mcpRequest } from '../helpers/mcp.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';

// The example with its MCP route open to calls without a task: what is tested here is how a
// message is read, not the task rule (test/integration/task-integrity.test.ts has that).
const { config: openMcp } = exampleWith({}, {});
writeFileSync(openMcp, readFileSync(openMcp, 'utf8').replace('{ method: POST, path: /mcp, protocol: mcp, server: support }', '{ method: POST, path: /mcp, protocol: mcp, server: support, requireTask: false }'));
const runtime = loadRuntime(openMcp);
const decideOn = (request: Record<string, unknown>) => decide(request as CheckRequestMessage, runtime.state());
const mcpText = (text: string) => mcpRequest(null, { raw: Buffer.from(text, 'utf8') });
const caseText = (text: string) => {
  const raw = Buffer.from(text, 'utf8');
  return checkRequest('POST', '/cases', {
    principal: SUPPORT_AGENT,
    headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme', 'content-length': String(raw.length) },
    rawBody: raw,
  });
};
const get = (path: string, headers: Record<string, string> = {}) => checkRequest('GET', path, { principal: SUPPORT_AGENT, headers });

const CREATE_CASE_ARGS = '{"ticketId":"T-1042","priority":"critical"}';

describe('MCP messages: one reading or none', () => {
  const smuggled: [string, string, number][] = [
    ['a second method spelled "Method"', `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"create_case","arguments":${CREATE_CASE_ARGS}}}`, -32600],
    ['a lone "METHOD"', `{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","params":{"name":"create_case","arguments":${CREATE_CASE_ARGS}}}`, -32600],
    ['"Method" before "method"', `{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}`, -32600],
    ['a second name spelled "Name"', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","Name":"create_case","arguments":${CREATE_CASE_ARGS}}}`, -32600],
    ['a second params object under "paramſ"', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"ticketId":"T-1"}},"param\u017f":{"name":"create_case","arguments":${CREATE_CASE_ARGS}}}`, -32600],
    ['a params object under "PARAMS" only', `{"jsonrpc":"2.0","id":1,"method":"tools/list","PARAMS":{"name":"create_case"}}`, -32600],
    ['"Arguments" beside "arguments"', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"ticketId":"T-1"},"Arguments":{"ticketId":"internal-0"}}}`, -32600],
    ['a lone "ARGUMENTS"', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","ARGUMENTS":{"ticketId":"internal-0"}}}`, -32600],
    ['a duplicate "name"', `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","name":"create_case","arguments":${CREATE_CASE_ARGS}}}`, -32600],
    ['a duplicate "method"', '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"create_case"}}', -32600],
    ['a NUL after "method"', '{"jsonrpc":"2.0","id":1,"method":"tools/list","method\\u0000":"tools/call"}', -32600],
    ['a zero-width space in "method"', '{"jsonrpc":"2.0","id":1,"method":"tools/list","me\u200bthod":"tools/call"}', -32600],
    ['a Kelvin sign for k in an argument name', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"ticketId":"T-1","tic\u212aetId":"internal-0"}}}', -32600],
    ['an argument name differing only in case from one a policy reads', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"TicketId":"internal-0"}}}', -32600],
    ['an integer beyond 2^53 (approvals would match its neighbour)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_case","arguments":{"amountCents":9007199254740993}}}', -32600],
    ['1e400 (digested like null)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_case","arguments":{"amountCents":1e400}}}', -32600],
    ['more digits than a double keeps', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_case","arguments":{"amount":0.30000000000000000001}}}', -32600],
    ['an unpaired surrogate in a tool name', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket\\ud800"}}', -32600],
    ['trailing text after the message', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_case"}}', -32700],
  ];
  for (const [what, text, rpcCode] of smuggled) {
    it(`refuses ${what}`, async () => {
      const decision = await decideOn(mcpText(text));
      assert.equal(decision.allowed, false);
      assert.equal(decision.code, 'bad_request', decision.message ?? '');
      assert.equal(decision.rpc?.errorCode, rpcCode);
    });
  }

  for (const name of [' create_case', 'create_case ', 'create_case\\u0000', '\\uff43reate_case']) {
    it(`refuses a tool name servers that trim or normalize read otherwise: ${JSON.stringify(name)}`, async () => {
      const decision = await decideOn(mcpText(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"${name}","arguments":{}}}`));
      assert.equal(decision.code, 'bad_request', decision.message ?? '');
      assert.equal(decision.rpc?.errorCode, -32600);
    });
  }

  it('refuses a batch longer than limits.maxBatchCalls before deciding any call', async () => {
    const call = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    const decision = await decide(mcpRequest(null, { raw: Buffer.from(`[${Array(17).fill(call).join(',')}]`), protocolVersion: '2025-06-18' }) as CheckRequestMessage, runtime.state());
    assert.equal(decision.code, 'bad_request');
    assert.match(decision.message ?? '', /17 calls is more than the 16 allowed/);
    assert.equal(decision.evaluationUs, 0);
  });

  it('still decides the honest messages as before', async () => {
    const list = await decideOn(mcpText('{"jsonrpc":"2.0","id":1,"method":"tools/list"}'));
    assert.equal(list.allowed, true, list.message ?? '');
    const create = await decideOn(mcpText(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_case","arguments":${CREATE_CASE_ARGS}}}`));
    assert.equal(create.code, 'approval_required');
    const read = await decideOn(mcpText('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"ticketId":"T-1","amount":9007199254740991,"ratio":0.1}}}'));
    assert.equal(read.allowed, true, read.message ?? '');
  });
});

describe('JSON bodies (body: true routes): one reading or none', () => {
  const smuggled: [string, string][] = [
    ['a duplicate "priority" (first-wins backends see critical)', '{"ticketId":"T-1042","priority":"critical","priority":"low"}'],
    ['"Priority" beside "priority"', '{"ticketId":"T-1042","Priority":"critical","priority":"low"}'],
    ['"priority" beside "Priority"', '{"ticketId":"T-1042","priority":"low","Priority":"critical"}'],
    ['a lone "PRIORITY" beside a read "priority" the schema lets be optional elsewhere', '{"ticketId":"T-1042","priority":"low","summary":"x","PRIORITY":"critical"}'],
    ['"prioritY" with a long s elsewhere', '{"ticketId":"T-1042","priority":"low","\u017fummary":"x","summary":"y"}'],
    ['an integer beyond 2^53', '{"ticketId":"T-1042","priority":"low","summary":"x","n":9007199254740993}'],
    ['a number beyond a double', '{"ticketId":"T-1042","priority":"low","n":1e400}'],
    ['a body with trailing text', '{"ticketId":"T-1042","priority":"low"} {"priority":"critical"}'],
    ['__proto__', '{"ticketId":"T-1042","priority":"low","__proto__":{"priority":"critical"}}'],
  ];
  for (const [what, text] of smuggled) {
    it(`refuses ${what}`, async () => {
      const decision = await decideOn(caseText(text));
      assert.equal(decision.allowed, false);
      assert.equal(decision.code, 'bad_request', decision.message ?? '');
    });
  }

  it('refuses a lone case-variant of a name a policy reads', async () => {
    // A backend that matches names case-insensitively opens a critical case; Cedar sees no priority.
    const decision = await decideOn(caseText('{"ticketId":"T-1042","Priority":"critical"}'));
    assert.equal(decision.code, 'bad_request');
    assert.match(decision.message ?? '', /"Priority", which case-insensitive parsers read as "priority"/);
  });

  it('answers bad_request, not internal_error, for a field of the wrong JSON type', async () => {
    for (const text of ['{"ticketId":5,"priority":"low"}', '{"ticketId":"T-1","priority":["critical"]}', '{"ticketId":"T-1","priority":{"x":"critical"}}', '{"ticketId":"T-1","priority":true}']) {
      const decision = await decideOn(caseText(text));
      assert.equal(decision.code, 'bad_request', `${text}: ${decision.code} ${decision.message}`);
    }
  });

  it('still decides the honest bodies as before', async () => {
    assert.equal((await decideOn(caseText('{"ticketId":"T-1042","priority":"low"}'))).allowed, true);
    assert.equal((await decideOn(caseText('{"ticketId":"T-1042","priority":"critical"}'))).code, 'policy_denied');
  });
});

describe('paths and methods: one reading or none', () => {
  const refused = [
    '/tickets/internal-0;v=1',
    '/tickets/internal-0;',
    '/tickets;x=1/internal-0',
    '/tickets/x\\..\\..\\prod-db\\customers',
    '/tickets/internal-0\\',
    '/tickets/internal-0#frag',
    '/tickets/T-1%23frag',
    '/tickets/T-1%3Bv=1',
    '/tickets/T-1%5C..%5Cprod-db',
    '/tickets/T-1%00',
    '/tickets/T-1%0a',
    '/tickets/T-1%0D%0AX-Injected:%201',
    '/tickets/T-1%1f',
    '/tickets/T-1%7F',
    '/tickets/T-1\u0000',
    '/tickets/T-1\t',
    '/tickets/T 1',
    '/tickets/T-1"',
    '/tickets/T-1<x>',
    '/tickets/T-1|x',
    '/tickets/T-1^',
    '/tickets/T-1`',
    '/tickets/T-1{x}',
    '/tickets/T-1[0]',
    '/tickets/t\u00e9',
    '/tickets/T-1%',
    '/tickets/T-1%G0',
    '/tickets/internal%2D0%252F..',
    '/tickets/internal-%2530',
    '/tickets/T-1?q=1#frag',
    '/tickets/T-1?q=%0a\u0001',
    '/tickets/%20internal-0',
    '/tickets/internal-0%09',
    '/tickets/%EF%BD%89nternal-0',
    '/tickets/inter%C2%ADnal-0',
  ];
  for (const path of refused) {
    it(`refuses ${JSON.stringify(path)}`, async () => {
      const decision = await decideOn(get(path));
      assert.equal(decision.allowed, false);
      assert.equal(decision.code, 'bad_request', decision.message ?? '');
    });
  }

  for (const header of ['x-http-method-override', 'x-http-method', 'x-method-override', 'X-HTTP-Method-Override']) {
    it(`refuses a read that carries ${header} on a route that does not honour it`, async () => {
      const decision = await decide(checkRequest('GET', '/tickets/T-1', {
        principal: SUPPORT_AGENT,
        headerMap: [{ key: ':path', value: '/tickets/T-1' }, { key: header, value: 'DELETE' }],
      }) as CheckRequestMessage, runtime.state());
      assert.equal(decision.code, 'bad_request', decision.message ?? '');
      assert.match(decision.message ?? '', /does not declare that it honours it/);
    });
  }

  it('reads header names that differ in case only as one header, in the headers map as in header_map', async () => {
    for (const name of ['authorization', 'content-type', 'host', 'txn-token']) {
      const decision = await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { [name]: 'a', [name.toUpperCase()]: 'b' } }));
      assert.equal(decision.code, 'bad_request', name);
      assert.match(decision.message ?? '', /is repeated/, name);
    }
    const limits = runtime.state().config.limits;
    const viaMap = decodeCheckRequest(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-tenant-id': 'acme', 'X-Tenant-Id': 'globex' } }) as CheckRequestMessage, limits, 0);
    const viaLines = decodeCheckRequest(
      checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: 'x-tenant-id', value: 'acme' }, { key: 'X-Tenant-Id', value: 'globex' }] }) as CheckRequestMessage,
      limits,
      0,
    );
    assert.ok(viaMap.ok && viaLines.ok);
    assert.equal(viaMap.value.headers.get('x-tenant-id'), 'acme,globex');
    assert.equal(viaLines.value.headers.get('x-tenant-id'), 'acme,globex');
    // The honest twin: one spelling, decided as always.
    assert.equal((await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'content-type': 'a' } }))).code, null);
  });

  it('refuses a :path or :method header that disagrees with the request (a CheckRequest Envoy did not build)', async () => {
    const path = await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { ':path': '/tickets/internal-0' } }));
    assert.equal(path.code, 'bad_request');
    const method = await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { ':method': 'DELETE' } }));
    assert.equal(method.code, 'bad_request');
  });

  it('refuses two header names an upstream reading "_" as "-" takes for one (CGI: HTTP_X_TENANT_ID)', async () => {
    const pairs: [string, string][] = [
      ['x-tenant-id', 'x_tenant_id'],
      ['x_tenant_id', 'x-tenant-id'],
      ['x-tenant_id', 'x_tenant-id'],
    ];
    for (const [a, b] of pairs) {
      for (const form of ['headers', 'header_map'] as const) {
        const request =
          form === 'headers'
            ? checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { [a]: 'acme', [b]: 'globex' } })
            : checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: ':path', value: '/tickets/T-1' }, { key: a, value: 'acme' }, { key: b, value: 'globex' }] });
        const decision = await decideOn(request);
        assert.equal(decision.code, 'bad_request', `${a} + ${b} in ${form}`);
        assert.match(decision.message ?? '', /reads "_" as "-"/);
      }
    }
    // The honest twin: a lone name with "_" is a header like any other.
    assert.equal((await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { x_custom_trace: '1' } }))).code, null);
  });

  it('refuses a CheckRequest with both header forms, or both body forms (Envoy sends one of each)', async () => {
    const twoHeaderSets = checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: ':path', value: '/tickets/T-1' }] }) as { attributes: { request: { http: Record<string, unknown> } } };
    twoHeaderSets.attributes.request.http['headers'] = { 'x-http-method-override': 'DELETE' };
    const headers = await decideOn(twoHeaderSets);
    assert.equal(headers.code, 'bad_request');
    assert.match(headers.message ?? '', /both headers and header_map/);
    const text = '{"ticketId":"T-1042","priority":"low"}';
    const withBoth = caseText(text) as { attributes: { request: { http: Record<string, unknown> } } };
    withBoth.attributes.request.http['body'] = '{"ticketId":"T-1042","priority":"critical"}';
    const twoBodies = await decideOn(withBoth);
    assert.equal(twoBodies.code, 'bad_request');
    assert.match(twoBodies.message ?? '', /both body and raw_body/);
    // The honest twins: one form each, decided as always.
    assert.equal((await decideOn(caseText(text))).code, null);
    assert.equal((await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: ':path', value: '/tickets/T-1' }] }))).code, null);
  });

  it('refuses a host, :authority or host header that disagree (a CheckRequest Envoy did not build)', async () => {
    const base = checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }) as { attributes: { request: { http: { host?: string } } } };
    const host = base.attributes.request.http.host ?? '';
    assert.notEqual(host, '', 'the helper sends a host');
    const cases: [string, Record<string, string>, string | null][] = [
      [':authority naming another host', { ':authority': 'billing.internal' }, 'bad_request'],
      ['host naming another host', { host: 'billing.internal' }, 'bad_request'],
      [':authority and host disagreeing with each other', { ':authority': host, host: 'billing.internal' }, 'bad_request'],
      ['both naming the request host (the honest twin)', { ':authority': host, host }, null],
    ];
    for (const [what, headers, code] of cases) {
      const decision = await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers }));
      assert.equal(decision.code, code, what);
    }
  });

  it('denies every ticket of the internal range, not only internal-0', async () => {
    for (const id of ['internal-0', 'internal-1', 'internal-42', 'internal-x']) {
      const decision = await decideOn(get(`/tickets/${id}`));
      assert.equal(decision.code, 'policy_denied', id);
      assert.deepEqual(decision.determining, ['no-agent-internal-tickets']);
    }
    const overMcp = await decideOn(mcpText('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_ticket","arguments":{"ticketId":"internal-7"}}}'));
    assert.equal(overMcp.code, 'policy_denied');
    assert.deepEqual(overMcp.determining, ['no-agent-internal-tickets-mcp']);
  });

  it('still allows the honest paths', async () => {
    for (const path of ['/tickets/T-1', '/tickets/T-1?expand=comments', '/tickets/T%2D1', "/tickets/a-b_c.d~e!$&'()*+,=:@"]) {
      const decision = await decideOn(get(path));
      assert.equal(decision.allowed, true, `${path}: ${decision.code} ${decision.message}`);
    }
  });
});
