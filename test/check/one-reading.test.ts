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

// The example with its MCP route open to calls without a task and its tools not pinned: what is
// tested here is how a message is read, whatever tools the server has, not the task rule
// (test/integration/task-integrity.test.ts) nor the pinned schemas (pinned-tools.test.ts).
const { config: openMcp } = exampleWith({}, {});
const exampleYaml = readFileSync(openMcp, 'utf8');
const openYaml = exampleYaml.replace('{ method: POST, path: /mcp, protocol: mcp, server: support, tools: ./support-tools.json }', '{ method: POST, path: /mcp, protocol: mcp, server: support, requireTask: false }');
assert.notEqual(openYaml, exampleYaml, 'the example has its MCP route where this test expects it');
writeFileSync(openMcp, openYaml);
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
    ['a method beside a result (a request to one server, a reply to another)', '{"jsonrpc":"2.0","id":1,"result":{},"method":"tools/call","params":{"name":"create_case","arguments":{}}}', -32600],
    ['a method beside an error', '{"jsonrpc":"2.0","id":1,"method":"tools/call","error":{"code":1,"message":"x"},"params":{"name":"create_case","arguments":{}}}', -32600],
    ['a _method member (the HTTP method to Laravel)', '{"jsonrpc":"2.0","id":1,"method":"tools/list","_method":"DELETE"}', -32600],
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

  it('refuses a resource URI that the server could resolve to another resource than the one decided on', async () => {
    // Cedar compares McpResource uids exactly: a forbid on file:///etc/passwd must see every spelling of it.
    const read = (uri: string) => decideOn(mcpText(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri } })));
    const refused = [
      'file:///tmp/../etc/passwd',
      'file:///etc/./passwd',
      'file:///etc//passwd',
      'file:///etc/passwd/..',
      'file:///etc/%70asswd',
      'file:///etc/pass%77d',
      'file:///etc%2Fpasswd',
      'file:///etc/%2e%2e/etc/passwd',
      'file:///etc/passwd%00.txt',
      'file:///etc/passwd%',
      'file:///etc/passwd%zz',
      'file:///C:\\Windows\\win.ini',
      'file:///etc/passwd#x',
      'FILE:///etc/passwd',
      'File:///etc/passwd',
      'https://Docs.Example.org/a',
      '/etc/passwd',
      'etc/passwd',
    ];
    for (const uri of refused) {
      const decision = await read(uri);
      assert.equal(decision.code, 'bad_request', `${uri}: ${decision.code} ${decision.message}`);
      assert.equal(decision.rpc?.errorCode, -32600, uri);
      assert.match(decision.message ?? '', /^resources\/read names the URI/, uri);
    }
    // The honest spellings reach the policies (which permit no resource reads in the example).
    for (const uri of ['file:///etc/passwd', 'file:///var/data/', 'https://docs.example.org/a?b=%20x&c=1', 'postgres://User@db.example.org:5432/tickets', 'screen://main', 'file:///tmp/caf%C3%A9']) {
      const decision = await read(uri);
      assert.equal(decision.code, 'policy_denied', `${uri}: ${decision.code} ${decision.message}`);
    }
  });

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
    // Laravel reads a JSON body's members as parameters, _method among them: a DELETE to it.
    ['a _method member', '{"ticketId":"T-1042","priority":"low","_method":"DELETE"}'],
    ['a _METHOD member', '{"_METHOD":"DELETE","ticketId":"T-1042","priority":"low"}'],
    ['a .method member', '{"ticketId":"T-1042","priority":"low",".method":"DELETE"}'],
    // Rails apps that convert keys to snake_case, Pydantic models with camelCase aliases: one field.
    ['a snake_case twin of a name a policy reads', '{"ticketId":"T-1042","priority":"low","ticket_id":"T-9999"}'],
    ['a kebab-case twin of a name a policy reads', '{"ticketId":"T-1042","ticket-id":"T-9999","priority":"low"}'],
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

  it('refuses a lone naming-style variant of a name a policy reads', async () => {
    // An upstream that converts keys reads ticket_id as its ticketId field; Cedar sees no ticketId.
    const decision = await decideOn(caseText('{"ticket_id":"T-1042","priority":"low"}'));
    assert.equal(decision.code, 'bad_request');
    assert.match(decision.message ?? '', /"ticket_id", which frameworks that convert naming styles \(account_id, accountId\) read as "ticketId"/);
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

describe('body bytes: read as the upstream reads them, or refused', () => {
  const caseBytes = Buffer.from('{"ticketId":"T-1042","priority":"low"}');
  const mcpBytes = Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
  const caseWith = (headers: Record<string, string>) =>
    checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme', 'content-length': String(caseBytes.length), ...headers }, rawBody: caseBytes });
  const mcpWith = (headers: Record<string, string>) => mcpRequest(null, { raw: mcpBytes, headers });
  // Each case builds its headers for a body of n bytes.
  const refused: [string, (n: number) => Record<string, string>, RegExp][] = [
    // The upstream inflates the body and reads another document than the bytes Mandate read.
    ['content-encoding: br', () => ({ 'content-encoding': 'br' }), /content-encoded \(br\)/],
    ['content-encoding: gzip', () => ({ 'content-encoding': 'gzip' }), /content-encoded/],
    ['content-encoding: identity, gzip', () => ({ 'content-encoding': 'identity, gzip' }), /content-encoded/],
    // An upstream that honours the charset reads other strings from the same bytes.
    ['charset=iso-8859-1', () => ({ 'content-type': 'application/json; charset=iso-8859-1' }), /charset "iso-8859-1"/],
    ['charset="UTF-16"', () => ({ 'content-type': 'application/json;charset="UTF-16"' }), /charset "utf-16"/],
    ['two charsets', () => ({ 'content-type': 'application/json; charset=utf-8; charset=latin1' }), /charset twice/],
    // Envoy frames bodies by their content-length: any other relation is not Envoy's message.
    ['a content-length longer than the body', (n) => ({ 'content-length': String(n + 1) }), /truncated/],
    ['a content-length shorter than the body', (n) => ({ 'content-length': String(n - 1) }), /longer than its content-length/],
    ['a hexadecimal content-length', (n) => ({ 'content-length': `0x${n.toString(16)}` }), /not a decimal number/],
    ['a content-length in exponent form', (n) => ({ 'content-length': `${n}e0` }), /not a decimal number/],
    ['a content-length with a sign', (n) => ({ 'content-length': `+${n}` }), /not a decimal number/],
  ];
  for (const [what, headers, message] of refused) {
    it(`refuses a JSON body with ${what}, on a body route and on MCP`, async () => {
      const body = await decideOn(caseWith(headers(caseBytes.length)));
      assert.equal(body.code, 'bad_request', body.message ?? '');
      assert.match(body.message ?? '', message);
      const mcp = await decideOn(mcpWith(headers(mcpBytes.length)));
      assert.equal(mcp.code, 'bad_request', mcp.message ?? '');
      assert.match(mcp.message ?? '', message);
      assert.equal(mcp.rpc?.errorCode, -32600);
    });
  }

  it('still decides the honest spellings as before', async () => {
    const honest: Record<string, string>[] = [{}, { 'content-encoding': 'identity' }, { 'content-type': 'application/json; charset=utf-8' }, { 'content-type': 'application/json;charset="UTF-8"' }, { 'content-type': 'application/json; charset=utf8; profile=x' }];
    for (const headers of honest) {
      const decision = await decideOn(caseWith(headers));
      assert.equal(decision.allowed, true, `${JSON.stringify(headers)}: ${decision.code} ${decision.message}`);
      const mcp = await decideOn(mcpWith(headers));
      assert.equal(mcp.allowed, true, `MCP ${JSON.stringify(headers)}: ${mcp.code} ${mcp.message}`);
    }
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

  it('refuses a _method query parameter in every spelling PHP and others read as one', async () => {
    // Symfony/Laravel run POST /tickets/T-1/comments?_method=DELETE as a DELETE.
    for (const query of ['_method=DELETE', '_METHOD=DELETE', '%5Fmethod=DELETE', '%5fmethod=DELETE', '.method=DELETE', '+method=DELETE', '%20method=DELETE', '[method=DELETE', 'a=1&_method=DELETE', '_method', '%5F%6D%65%74%68%6F%64=DELETE', 'x=%25&_%4Dethod=DELETE']) {
      const decision = await decideOn(checkRequest('POST', `/tickets/T-1/comments?${query}`, { principal: SUPPORT_AGENT }));
      assert.equal(decision.code, 'bad_request', query);
      assert.match(decision.message ?? '', /_method parameter/, query);
    }
    // The honest twins: other names, or _method as a value.
    for (const query of ['method=x', 'x_method=1', 'q=_method', 'methods=1']) {
      const decision = await decideOn(get(`/tickets/T-1?${query}`));
      assert.equal(decision.allowed, true, `${query}: ${decision.code} ${decision.message}`);
    }
  });

  it('refuses the path-override headers IIS and older Symfony route on', async () => {
    for (const name of ['x-original-url', 'X-Rewrite-URL', 'x_original_url']) {
      const decision = await decideOn(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { [name]: '/admin' } }));
      assert.equal(decision.code, 'bad_request', name);
    }
  });

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
    // A lone such name where its "-" form is a header Mandate reads or sets: Rack reads
    // x_http_method_override as the override Mandate did not see; x_mandate_principal would sit
    // beside the principal header Envoy adds; x_tenant_id is the task's tenant header here.
    for (const name of ['x_http_method_override', 'x-http_method', 'x_mandate_principal', 'x_mandate_decision_id', 'txn_token', 'x_forwarded_client_cert', 'x_tenant_id', 'mcp_method', 'content_encoding', 'user_agent']) {
      for (const form of ['headers', 'header_map'] as const) {
        const request =
          form === 'headers'
            ? checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { [name]: 'DELETE' } })
            : checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: ':path', value: '/tickets/T-1' }, { key: name, value: 'DELETE' }] });
        const decision = await decideOn(request);
        assert.equal(decision.code, 'bad_request', `${name} in ${form}`);
        assert.match(decision.message ?? '', /a header Mandate reads or sets/, name);
      }
    }
    // The honest twin: a lone name with "_" that is no header Mandate reads is a header like any other.
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

  it('reads the host as every upstream does: case, a trailing dot, an empty or default port are one host', () => {
    const limits = runtime.state().config.limits;
    const hostOf = (host: string, scheme = 'https') => {
      const request = checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { ':authority': host } }) as { attributes: { request: { http: Record<string, unknown> } } };
      request.attributes.request.http['host'] = host;
      request.attributes.request.http['scheme'] = scheme;
      const decoded = decodeCheckRequest(request as CheckRequestMessage, limits, 0);
      return decoded.ok ? decoded.value.host : `refused: ${decoded.message}`;
    };
    // A policy that forbids admin.internal must see admin.internal in every spelling of it.
    for (const [host, scheme] of [['admin.internal', 'https'], ['ADMIN.Internal', 'https'], ['admin.internal.', 'https'], ['admin.internal:443', 'https'], ['admin.internal:80', 'http'], ['Admin.Internal.:', 'http']]) {
      assert.equal(hostOf(host as string, scheme), 'admin.internal', `${host} (${scheme})`);
    }
    assert.equal(hostOf('admin.internal:8443'), 'admin.internal:8443');
    assert.equal(hostOf('admin.internal:80', 'https'), 'admin.internal:80');
    assert.equal(hostOf('[::1]:443'), '[::1]');
    for (const host of ['user@admin.internal', 'adm%69n.internal', 'admin internal', 'admin.internal..', '.', 'admin.internal:080', 'admin.internal:65536', 'admin.internal:x']) {
      assert.match(hostOf(host), /^refused: the request host/, host);
    }
  });

  it('refuses a forwarded host that is not the request\'s host, unless context.forwardedHost says no upstream reads it', async () => {
    // Express, Django, Rails and Spring serve the X-Forwarded-Host when they trust proxies.
    const withHeaders = (headers: Record<string, string>) => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers });
    const refused: Record<string, string>[] = [
      { 'x-forwarded-host': 'admin.internal' },
      { 'x-forwarded-host': 'tools.example.org, admin.internal' },
      { 'x-forwarded-host': 'tools.example.org:8443' },
      { 'x-forwarded-host': 'user@tools.example.org' },
      { forwarded: 'for=10.0.0.1;host=admin.internal' },
      { forwarded: 'for=10.0.0.1, for=10.0.0.2;Host="admin.internal";proto=https' },
      { 'x_forwarded_host': 'tools.example.org' },
    ];
    for (const headers of refused) {
      const decision = await decideOn(withHeaders(headers));
      assert.equal(decision.code, 'bad_request', JSON.stringify(headers));
    }
    // The honest twins: the request's own host in any spelling of it, or no host named.
    const honest: Record<string, string>[] = [
      { 'x-forwarded-host': 'tools.example.org' },
      { 'x-forwarded-host': 'TOOLS.example.org.' },
      { 'x-forwarded-host': 'tools.example.org:443' },
      { forwarded: 'for=10.0.0.1;host="tools.example.org";proto=https' },
      { forwarded: 'for=10.0.0.1;proto=https' },
    ];
    for (const headers of honest) {
      const decision = await decideOn(withHeaders(headers));
      assert.equal(decision.allowed, true, `${JSON.stringify(headers)}: ${decision.code} ${decision.message}`);
    }
    // Where no upstream reads them, the operator says so and they are not looked at.
    const { config } = exampleWith({ context: 'context:\n  headers: [content-type, user-agent, x-request-id, x-tenant-id]\n  forwardedHost: ignore' });
    const ignoring = loadRuntime(config);
    const decision = await decide(withHeaders({ 'x-forwarded-host': 'admin.internal' }) as CheckRequestMessage, ignoring.state());
    assert.equal(decision.allowed, true, `${decision.code} ${decision.message}`);
  });

  it('refuses a path segment that some router reads as a route\'s literal segment (case, escapes)', async () => {
    for (const path of ['/TICKETS/T-1', '/Tickets/T-1', '/%74ickets/T-1', '/tickets%C2%AD/T-1']) {
      const decision = await decideOn(get(path));
      assert.equal(decision.code, 'bad_request', `${path}: ${decision.message}`);
      assert.match(decision.message ?? '', /read as the route segment "tickets"/);
    }
    // The honest twin, and a ticket id that merely contains a route word.
    assert.equal((await decideOn(get('/tickets/T-1'))).allowed, true);
    assert.equal((await decideOn(get('/tickets/tickets'))).code, null);
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

  it('refuses an escaped "." or ".." segment, which URL parsers resolve as the dot segment it spells', async () => {
    for (const path of ['/tickets/T-1/%2e%2e/internal-0', '/tickets/%2E%2E/T-1', '/%2e/tickets/T-1', '/tickets/T-1/.%2e', '/tickets/T-1/%2e']) {
      const decision = await decideOn(get(path));
      assert.equal(decision.code, 'bad_request', `${path}: ${decision.message}`);
      assert.equal(decision.message, 'path is not normalized (an escaped "." or ".." segment)');
    }
  });

  it('gives policies the path and query as the upstream reads them: escaped unreserved characters decoded, other escapes in upper case', async () => {
    // A policy on context.http.path (like "/tickets/internal-*") sees /tickets/%69nternal-0 as
    // /tickets/internal-0, the ticket the upstream serves.
    const read = async (path: string) => ((await decideOn(get(path))).cedar?.context as { http: { path: string } } | undefined)?.http.path;
    assert.equal(await read('/tickets/%69nternal-0'), '/tickets/internal-0');
    assert.equal(await read('/tickets/%54%2d1'), '/tickets/T-1');
    assert.equal(await read('/tickets/a%7eb%5F'), '/tickets/a~b_');
    assert.equal(await read('/tickets/a%3ab'), '/tickets/a%3Ab', 'a reserved character stays escaped');
    assert.equal(await read('/tickets/T-1'), '/tickets/T-1');
    assert.equal(await read('/tickets/file%2Ejson'), '/tickets/file.json', 'an escaped "." inside a segment is no dot segment');
    const query = async (path: string) => ((await decideOn(get(path))).cedar?.context as { http: { query: string } } | undefined)?.http.query;
    assert.equal(await query('/tickets/T-1?%61dmin=1&x=%2f+y'), 'admin=1&x=%2F+y');
  });

  it('still allows the honest paths', async () => {
    for (const path of ['/tickets/T-1', '/tickets/T-1?expand=comments', '/tickets/T%2D1', "/tickets/a-b_c.d~e!$&'()*+,=:@"]) {
      const decision = await decideOn(get(path));
      assert.equal(decision.allowed, true, `${path}: ${decision.code} ${decision.message}`);
    }
  });
});
