// The ext_authz server on a real port, called by a client built from Envoy's upstream protos.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SERVING_STATUS } from '../../src/server/health.js';
import { REASONS, type ReasonCode } from '../../src/core/reasons.js';
import { encodeUpstream, patchBytes, sendRawCheck } from '../helpers/raw-client.js';
import { BILLING_AGENT, SUPPORT_AGENT, caseBody, checkRequest } from '../helpers/requests.js';
import { createHealthClient, exampleRequests, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient, type CheckClient, type CheckResponseObject } from '../helpers/upstream.js';

// The code each example deny is expected to carry.
const EXAMPLE_DENY_CODES: Record<string, ReasonCode> = {
  'deny-anonymous-read-ticket.json': 'unauthenticated',
  'deny-billing-read-ticket.json': 'policy_denied',
  'deny-case-body-not-json.json': 'bad_request',
  'deny-empty-request.json': 'bad_request',
  'deny-invalid-spiffe-id.json': 'invalid_identity',
  'deny-support-case-other-tenant.json': 'policy_denied',
  'deny-support-critical-case.json': 'policy_denied',
  'deny-support-internal-ticket.json': 'policy_denied',
  'deny-support-production-datastore.json': 'no_route',
  'deny-support-namespace-bot-read-ticket.json': 'policy_denied',
  'deny-support-refund-without-task.json': 'task_required',
  'deny-mcp-unpinned-tool.json': 'bad_request', // not in support-tools.json, which the example pins
  'deny-mcp-create-case-without-task.json': 'task_required',
  'deny-mcp-get-ticket-without-task.json': 'task_required',
  'deny-support-comment-without-task.json': 'task_required',
  'deny-mcp-header-mismatch.json': 'bad_request',
  'deny-mcp-response-posted.json': 'bad_request',
  'deny-mcp-batch-without-task.json': 'task_required',
  'deny-untrusted-domain.json': 'untrusted_domain',
};

function header(res: CheckResponseObject, key: string, where: 'ok' | 'denied'): string | undefined {
  const headers = where === 'ok' ? res.okResponse?.headers : res.deniedResponse?.headers;
  return headers?.find((h) => h.header?.key === key)?.header?.value;
}

/** Asserts a deny with `code`, answered as the catalogue says. Returns the parsed body. */
export function assertDenied(res: CheckResponseObject, code: ReasonCode): Record<string, unknown> {
  const spec = REASONS[code];
  assert.equal(res.status?.code, spec.grpcCode, `grpc status for ${code}: ${res.status?.message}`);
  assert.ok(res.deniedResponse, 'a denied response');
  assert.equal(res.okResponse, undefined);
  assert.equal(res.deniedResponse.status?.code, spec.httpStatus);
  assert.equal(header(res, 'content-type', 'denied'), 'application/json');
  const body = JSON.parse(res.deniedResponse.body ?? '') as Record<string, unknown>;
  assert.equal(body['decision'], 'deny');
  assert.equal(body['code'], code);
  assert.equal(typeof body['message'], 'string');
  assert.equal(body['decisionId'], header(res, 'x-mandate-decision-id', 'denied'));
  return body;
}

function assertAllowed(res: CheckResponseObject): void {
  assert.equal(res.status?.code ?? 0, 0, res.status?.message);
  assert.ok(res.okResponse, 'an ok response');
  assert.match(header(res, 'x-mandate-decision-id', 'ok') ?? '', /^[0-9a-f-]{36}$/);
}

describe('ext_authz server (embedded example)', () => {
  let running: RunningServer;
  let client: CheckClient;

  before(async () => {
    running = await startExampleServer();
    client = createCheckClient(running.address);
  });
  after(async () => {
    client.close();
    await running.close();
  });

  /** Every bad input is followed by a good request: the server must keep serving. */
  async function assertStillServing(): Promise<void> {
    assertAllowed(await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT })));
  }

  it('reports SERVING for the server and the Authorization service', async () => {
    const health = createHealthClient(running.address);
    try {
      assert.equal(await health.check(''), SERVING_STATUS.SERVING);
      assert.equal(await health.check('envoy.service.auth.v3.Authorization'), SERVING_STATUS.SERVING);
      await assert.rejects(health.check('no.such.Service'), /NOT_FOUND|unknown service/);
    } finally {
      health.close();
    }
  });

  it('denies an empty CheckRequest with bad_request', async () => {
    const body = assertDenied(await client.check({}), 'bad_request');
    assert.equal(body['message'], 'CheckRequest has no HTTP request attributes');
    await assertStillServing();
  });

  for (const { name, request } of exampleRequests()) {
    it(`decides examples/requests/${name} as its name says`, async () => {
      const res = await client.check(request);
      if (name.startsWith('allow-')) assertAllowed(res);
      else {
        const code = EXAMPLE_DENY_CODES[name];
        assert.ok(code, `expected code for ${name} is listed in this test`);
        if (name.startsWith('deny-mcp-')) assert.equal((JSON.parse(res.deniedResponse?.body ?? '{}') as { error: { data: { code: string } } }).error.data.code, code);
        else assertDenied(res, code);
      }
    });
  }

  it('tells the upstream who the verified caller is, and strips a forged claim for anonymous callers', async () => {
    const agent = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }));
    assert.equal(header(agent, 'x-mandate-principal', 'ok'), SUPPORT_AGENT);
    const anonymous = await client.check(checkRequest('GET', '/status', { headers: { 'x-mandate-principal': SUPPORT_AGENT } }));
    assertAllowed(anonymous);
    assert.equal(header(anonymous, 'x-mandate-principal', 'ok'), undefined);
    assert.deepEqual(anonymous.okResponse?.headersToRemove, ['x-mandate-principal']);
  });

  it('does not put determining policies in deny bodies unless explain is on', async () => {
    const body = assertDenied(await client.check(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT })), 'policy_denied');
    assert.equal('determiningPolicies' in body, false);
  });

  describe('bad input', () => {
    const withHost = (request: Record<string, unknown>, host: string): Record<string, unknown> => {
      const http = (request as { attributes: { request: { http: Record<string, unknown> } } }).attributes.request.http;
      http['host'] = host;
      (http['headers'] as Record<string, string>)[':authority'] = host;
      return request;
    };
    const caseWith = (headers: Record<string, string>): Record<string, unknown> => {
      const body = caseBody({ ticketId: 'T-1', priority: 'low' });
      return checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, rawBody: body.rawBody, headers: { ...body.headers, ...headers } });
    };
    const cases: [string, () => object, ReasonCode, string][] = [
      ['no http attributes', () => ({ attributes: { source: { principal: SUPPORT_AGENT } } }), 'bad_request', 'CheckRequest has no HTTP request attributes'],
      ['a 10 KB path', () => checkRequest('GET', `/tickets/${'x'.repeat(10 * 1024)}`, { principal: SUPPORT_AGENT }), 'bad_request', 'path is longer than 8192 bytes'],
      ['an unknown HTTP method', () => checkRequest('BREW', '/tickets/T-1', { principal: SUPPORT_AGENT }), 'bad_request', 'unknown HTTP method'],
      ['a path without a leading slash', () => checkRequest('GET', 'tickets', { principal: SUPPORT_AGENT }), 'bad_request', 'path must start with "/"'],
      ['a dot-dot path', () => checkRequest('GET', '/tickets/../admin', { principal: SUPPORT_AGENT }), 'bad_request', 'path is not normalized (empty, "." or ".." segment)'],
      ['a source principal that is not a SPIFFE ID', () => checkRequest('GET', '/tickets/T-1', { principal: 'CN=support-agent,O=Example' }), 'invalid_identity', 'not a valid SPIFFE ID: scheme must be "spiffe://"'],
      ['a SPIFFE ID with a trailing slash', () => checkRequest('GET', '/tickets/T-1', { principal: `${SUPPORT_AGENT}/` }), 'invalid_identity', 'not a valid SPIFFE ID: path has a trailing "/"'],
      ['a SPIFFE ID from another trust domain', () => checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://other.org/ns/support/sa/support-agent' }), 'untrusted_domain', 'trust domain "other.org" is not configured in trustDomains'],
      ['a body that is not JSON with a JSON content type', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme' }, body: 'ticketId=T-1' }), 'bad_request', 'body is not valid JSON: not valid JSON (at offset 0)'],
      ['a body over the limit', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: 'T-1', priority: 'low', summary: 'x'.repeat(9000) }) }), 'bad_request', 'body is larger than 8192 bytes'],
      ['a truncated body', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme', 'content-length': '5000' }, body: '{"ticketId":"T-1","priority":"low"}' }), 'bad_request', 'body was truncated before it reached the decision point'],
      ['a JSON route without a body', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, headers: { 'content-type': 'application/json' } }), 'bad_request', 'POST /cases expects a JSON body and Envoy sent none (with_request_body)'],
      ['a body that does not fit the schema', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: 'T-1' }) }), 'bad_request', ''],
      ['a body that forges an entity reference', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: { __entity: { type: 'Ticket', id: 'x' } }, priority: 'low' }) }), 'bad_request', 'body.ticketId has the reserved key "__entity"'],
      ['a repeated single-valued header (header_map)', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: 'content-type', value: 'text/plain' }, { key: 'content-type', value: 'application/json' }] }), 'bad_request', 'header "content-type" is repeated'],
      ['a path with matrix parameters', () => checkRequest('GET', '/tickets/internal-0;v=1', { principal: SUPPORT_AGENT }), 'bad_request', 'path holds ";" (path parameters), which upstreams read differently; a route takes them only with matrixParams: true'],
      ['a path with backslashes', () => checkRequest('GET', '/tickets/x\\..\\..\\prod-db\\customers', { principal: SUPPORT_AGENT }), 'bad_request', 'path holds "\\", which is not allowed in a path (RFC 3986 pchar)'],
      ['a path with an escaped NUL', () => checkRequest('GET', '/tickets/T-1%00', { principal: SUPPORT_AGENT }), 'bad_request', 'path holds the escape %00 (a control, "\\", "#" or ";"), which upstreams read differently'],
      ['a method-override header', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-http-method-override': 'DELETE' } }), 'bad_request', 'the x-http-method-override header asks the upstream for another method, and this route does not declare that it honours it (methodOverride)'],
      ['a body member given twice', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme' }, body: '{"ticketId":"T-1","priority":"critical","priority":"low"}' }), 'bad_request', 'body is refused: member name "priority" appears twice in one object (at offset 40)'],
      ['a body field of the wrong type', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: 5, priority: 'low' }) }), 'bad_request', 'the request body does not match the schema of Action::"POST /cases"'],
      ['more headers than Envoy forwards', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`x-h${i}`, 'v'])) }), 'bad_request', 'the request has 104 headers, more than 100 (limits.maxHeaders)'],
      ['headers larger than Envoy forwards', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-big': 'v'.repeat(61 * 1024) } }), 'bad_request', "the request's headers add up to more than 61440 bytes (limits.maxHeaderBytes)"],
      ['a path segment a case-insensitive router reads as a route\'s', () => checkRequest('GET', '/TICKETS/T-1', { principal: SUPPORT_AGENT }), 'bad_request', 'path segment "TICKETS" is read as the route segment "tickets" by upstreams that compare segments case-insensitively or decoded; spell it as the route does'],
      ['a host with userinfo', () => withHost(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }), 'admin@tools.example.org'), 'bad_request', 'the request host is not a host name or address with an optional port (RFC 3986)'],
      ['an X-Forwarded-Host naming another host', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-forwarded-host': 'admin.internal' } }), 'bad_request', 'x-forwarded-host names the host "admin.internal", not the request\'s: upstreams that trust it serve that host (context.forwardedHost)'],
      ['a content-encoded body', () => caseWith({ 'content-encoding': 'gzip' }), 'bad_request', "body is content-encoded (gzip): Mandate would read the encoded bytes, the upstream the decoded body (put Envoy's decompressor before ext_authz)"],
      ['a body in another charset', () => caseWith({ 'content-type': 'application/json; charset=iso-8859-1' }), 'bad_request', 'content-type names the charset "iso-8859-1": bodies are read as UTF-8 only'],
      ['a _method query parameter', () => checkRequest('POST', '/tickets/T-1/comments?_method=DELETE', { principal: SUPPORT_AGENT }), 'bad_request', "the query carries a _method parameter, which frameworks such as Symfony and Laravel take for another method than the request's"],
      ['a _method member in a JSON body', () => checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: 'T-1042', priority: 'low', _method: 'DELETE' }) }), 'bad_request', 'the body carries a "_method" member, which frameworks such as Laravel take for another method than the request\'s'],
      ['an escaped dot segment', () => checkRequest('GET', '/tickets/T-1/%2e%2e/internal-0', { principal: SUPPORT_AGENT }), 'bad_request', 'path is not normalized (an escaped "." or ".." segment)'],
      ['a path-override header', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-original-url': '/admin' } }), 'bad_request', "the x-original-url header asks some upstreams for another path than the request's"],
      ['a lone "_" spelling of a header Mandate reads', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { x_http_method_override: 'DELETE' } }), 'bad_request', 'header "x_http_method_override" is "x-http-method-override" to an upstream that reads "_" as "-", a header Mandate reads or sets'],
      ['a header_map raw value that is not UTF-8', () => checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headerMap: [{ key: 'x-tenant-id', rawValue: Buffer.from([0x61, 0xff, 0xfe]) }] }), 'bad_request', 'header "x-tenant-id" is not valid UTF-8'],
    ];
    for (const [name, build, code, message] of cases) {
      it(`denies ${name} with ${code} and keeps serving`, async () => {
        const body = assertDenied(await client.check(build()), code);
        if (message !== '') assert.equal(body['message'], message);
        else assert.match(String(body['message']), /^request does not match the schema: /);
        await assertStillServing();
      });
    }

    it('denies header values that are not valid UTF-8 (headers map) with bad_request and keeps serving', async () => {
      const bytes = encodeUpstream(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-tenant-id': 'MARK' } }));
      const res = await sendRawCheck(running.address, patchBytes(bytes, 'MARK', Buffer.from([0x41, 0xc3, 0x28, 0xff])));
      assert.equal(assertDenied(res, 'bad_request')['message'], 'header "x-tenant-id" is not valid UTF-8');
      await assertStillServing();
    });

    it('merges repeated list-valued headers the way Envoy does, so policy sees both values', async () => {
      const res = await client.check(
        checkRequest('POST', '/cases', {
          principal: SUPPORT_AGENT,
          rawBody: Buffer.from('{"ticketId":"T-1","priority":"low"}'),
          headerMap: [
            { key: 'content-type', value: 'application/json' },
            { key: 'x-tenant-id', value: 'acme' },
            { key: 'x-tenant-id', value: 'globex' },
          ],
        }),
      );
      assertDenied(res, 'policy_denied');
      await assertStillServing();
    });

    it('survives a burst of malformed requests and still decides correctly', async () => {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => client.check(i % 2 === 0 ? {} : checkRequest('GET', `/tickets/${'%'.repeat(i)}`, { principal: BILLING_AGENT }))),
      );
      for (const res of results) assert.notEqual(res.status?.code ?? 0, 0);
      await assertStillServing();
    });
  });
});
