// Wire compatibility: messages encoded with Envoy's upstream protos decode with ours, and
// messages we encode decode with Envoy's, field for field.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { respond } from '../../src/check/respond.js';
import { makeDecision } from '../helpers/decisions.js';
import { REASON_CODES } from '../../src/core/reasons.js';
import { decodeCheckRequestBytes, encodeCheckRequest, encodeCheckResponse, PROTOBUFJS_CHECK } from '../../src/server/protos.js';
import { loadUpstreamRoot } from '../helpers/upstream.js';
import type { Decision } from '../../src/core/decision.js';

const upstream = loadUpstreamRoot();
const UpstreamCheckRequest = upstream.lookupType('envoy.service.auth.v3.CheckRequest');
const UpstreamCheckResponse = upstream.lookupType('envoy.service.auth.v3.CheckResponse');
const TO_OBJECT = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false } as const;

const PEM = '-----BEGIN%20CERTIFICATE-----%0AMIIBszCCAVmgAwIBAgIUQ%0A-----END%20CERTIFICATE-----%0A';

// Every field of a CheckRequest that Envoy can send, at least once.
const FULL_REQUEST = {
  attributes: {
    source: {
      address: { socketAddress: { protocol: 0, address: '10.0.4.17', portValue: 51334 } },
      service: 'agent',
      labels: { team: 'support' },
      principal: 'spiffe://example.org/ns/support/sa/support-agent',
      certificate: PEM,
    },
    destination: {
      address: { socketAddress: { address: '10.0.9.2', portValue: 8443 } },
      principal: 'spiffe://example.org/ns/gateway/sa/envoy',
    },
    request: {
      time: { seconds: '1795000000', nanos: 123 },
      http: {
        id: '9876543210',
        method: 'POST',
        headers: { ':path': '/cases', 'content-type': 'application/json', 'x-tenant-id': 'acme' },
        headerMap: { headers: [{ key: 'x-raw', rawValue: Buffer.from('raw-value') }, { key: 'x-str', value: 'str' }] },
        path: '/cases?x=1',
        host: 'tools.example.org',
        scheme: 'https',
        query: '',
        fragment: '',
        size: '42',
        protocol: 'HTTP/2',
        body: '{"a":1}',
        rawBody: Buffer.from('{"ticketId":"T-1"}'),
      },
    },
    contextExtensions: { app: 'support-gateway', tier: 'gold' },
    metadataContext: {
      filterMetadata: {
        'envoy.filters.http.jwt_authn': { fields: { sub: { stringValue: 'agent' }, n: { numberValue: 3 } } },
      },
      typedFilterMetadata: {
        'example.typed': { typeUrl: 'type.googleapis.com/google.protobuf.StringValue', value: Buffer.from([0x0a, 0x01, 0x78]) },
      },
    },
    routeMetadataContext: { filterMetadata: { route: { fields: { name: { stringValue: 'cases' } } } } },
    tlsSession: { sni: 'tools.example.org' },
  },
};

/** A map<string, string> field's entries as an object, whether a decoder gave a Map or an object. */
const entriesOf = (m: unknown): Record<string, unknown> => (m instanceof Map ? Object.fromEntries(m) : { ...(m as object) });

describe('CheckRequest wire compatibility', () => {
  const upstreamBytes = Buffer.from(UpstreamCheckRequest.encode(UpstreamCheckRequest.fromObject(FULL_REQUEST)).finish());
  const expected = UpstreamCheckRequest.toObject(UpstreamCheckRequest.decode(upstreamBytes), TO_OBJECT);

  it('encodes every field with the upstream protos (the fixture is complete)', () => {
    const attrs = expected['attributes'] as Record<string, unknown>;
    for (const key of ['source', 'destination', 'request', 'contextExtensions', 'metadataContext', 'routeMetadataContext', 'tlsSession']) {
      assert.ok(key in attrs, `${key} is in the upstream encoding`);
    }
  });

  it('decodes upstream bytes with our protos, field for field', () => {
    const ours = PROTOBUFJS_CHECK.decode(upstreamBytes);
    const reencoded = encodeCheckRequest(ours);
    assert.deepEqual(UpstreamCheckRequest.toObject(UpstreamCheckRequest.decode(reencoded), TO_OBJECT), expected);
  });

  it('encodes with our protos to bytes identical to the upstream encoding', () => {
    assert.deepEqual(encodeCheckRequest(FULL_REQUEST), upstreamBytes);
  });

  it('reads the fields the pipeline uses with the served codec (codec.ts) exactly as with our protos', () => {
    // The served codec decodes only what decode.ts reads: those fields, and nothing else, must
    // equal what protobufjs reads with our protos from the same upstream bytes.
    const full = PROTOBUFJS_CHECK.decode(upstreamBytes) as typeof FULL_REQUEST;
    const read = (m: typeof FULL_REQUEST): unknown => {
      const a = m.attributes;
      const peer = (p: { address?: { socketAddress?: { address?: string; portValue?: number } }; principal?: string; certificate?: string }): unknown => ({
        address: p.address?.socketAddress?.address,
        port: Number(p.address?.socketAddress?.portValue),
        principal: p.principal,
        certificate: p.certificate,
      });
      const h = a.request.http;
      return {
        source: peer(a.source),
        destination: peer(a.destination),
        seconds: Number(a.request.time.seconds),
        // Maps are compared by their entries (the codec's headers are a Map, its extensions have no prototype: codec.ts).
        http: { method: h.method, path: h.path, host: h.host, scheme: h.scheme, body: h.body, rawBody: Buffer.from(h.rawBody).toString('hex'), headers: entriesOf(h.headers) },
        headerMap: h.headerMap.headers.map((x: { key?: string; value?: string; rawValue?: Uint8Array }) => ({ key: x.key, value: x.value, raw: x.rawValue === undefined ? undefined : Buffer.from(x.rawValue).toString('hex') })),
        extensions: { ...a.contextExtensions },
      };
    };
    assert.deepEqual(read(decodeCheckRequestBytes(upstreamBytes) as typeof FULL_REQUEST), read(full));
  });

  it('reads the fields the pipeline uses', () => {
    const ours = decodeCheckRequestBytes(upstreamBytes) as typeof FULL_REQUEST;
    const http = ours.attributes.request.http;
    assert.equal(ours.attributes.source.principal, FULL_REQUEST.attributes.source.principal);
    assert.equal(ours.attributes.source.certificate, PEM);
    assert.equal(ours.attributes.source.address.socketAddress.portValue, 51334);
    assert.equal(http.method, 'POST');
    assert.equal(http.path, '/cases?x=1');
    assert.deepEqual(entriesOf(http.headers), FULL_REQUEST.attributes.request.http.headers);
    assert.deepEqual(Buffer.from(http.rawBody), FULL_REQUEST.attributes.request.http.rawBody);
    assert.deepEqual(Buffer.from(http.headerMap.headers[0]!.rawValue as Buffer), Buffer.from('raw-value'));
    assert.deepEqual({ ...ours.attributes.contextExtensions }, FULL_REQUEST.attributes.contextExtensions);
  });
});

describe('CheckResponse wire compatibility', () => {
  const base: Decision = makeDecision();
  const shapes: [string, Decision, { explain: boolean; principalHeader: string | null }][] = [
    ['allow for a workload', base, { explain: false, principalHeader: 'x-mandate-principal' }],
    ['allow for an anonymous caller', { ...base, identity: { kind: 'anonymous' } }, { explain: false, principalHeader: 'x-mandate-principal' }],
    ['allow without a principal header', base, { explain: false, principalHeader: null }],
    ...REASON_CODES.map((code): [string, Decision, { explain: boolean; principalHeader: string | null }] => [
      `deny ${code}`,
      { ...base, allowed: false, code, message: `detail for ${code}` },
      { explain: code === 'policy_denied', principalHeader: 'x-mandate-principal' },
    ]),
  ];

  const mcpDeny = { ...base, allowed: false, code: 'approval_required' as const, message: null, approval: { task: 't-1', tool: 'support/create_case', argumentsDigest: 'ab'.repeat(32) } };
  shapes.push(
    ['MCP deny answered with HTTP 200 and a JSON-RPC error', { ...mcpDeny, rpc: { id: 7, errorCode: null, denyStatus: 200 } }, { explain: false, principalHeader: null }],
    ['MCP deny answered with HTTP 403 (mcpDenyStatus)', { ...mcpDeny, rpc: { id: 'r', errorCode: null, denyStatus: 403 } }, { explain: false, principalHeader: null }],
    ['MCP malformed request (HTTP 400, -32020)', { ...base, allowed: false, code: 'bad_request', message: 'Mcp-Name header does not match the body', rpc: { id: 1, errorCode: -32020, denyStatus: 400 } }, { explain: false, principalHeader: null }],
  );
  for (const [name, decision, config] of shapes) {
    it(`${name} decodes with the upstream protos as built`, () => {
      const built = respond(decision, config);
      // Proto3 does not tell an explicit zero from an absent field: compared with defaults filled in.
      const decoded = UpstreamCheckResponse.toObject(UpstreamCheckResponse.decode(encodeCheckResponse(built)), TO_OBJECT);
      const withDefaults = { ...TO_OBJECT, defaults: true };
      const expected = UpstreamCheckResponse.toObject(UpstreamCheckResponse.fromObject(built), withDefaults);
      assert.deepEqual(UpstreamCheckResponse.toObject(UpstreamCheckResponse.decode(encodeCheckResponse(built)), withDefaults), expected);
      const status = decoded['status'] as { code?: number };
      if (decision.allowed) {
        assert.equal(status.code ?? 0, 0);
        const ok = decoded['okResponse'] as { headers: { header: { key: string; value: string }; appendAction: number }[] };
        assert.equal(ok.headers[0]!.header.key, 'x-mandate-decision-id');
        assert.equal(ok.headers[0]!.appendAction, 2, 'OVERWRITE_IF_EXISTS_OR_ADD');
      } else {
        assert.notEqual(status.code ?? 0, 0);
        const denied = decoded['deniedResponse'] as { status: { code: number }; body: string };
        const body = JSON.parse(denied.body);
        if (decision.rpc === null) {
          assert.ok(denied.status.code >= 400);
          assert.equal(body.code, decision.code);
        } else {
          // A JSON-RPC error for the request's id; gRPC status still not OK, so Envoy blocks.
          assert.equal(denied.status.code, decision.code === 'bad_request' ? 400 : decision.rpc.denyStatus);
          assert.equal(body.jsonrpc, '2.0');
          assert.equal(body.id, decision.rpc.id);
          assert.equal(body.error.code, decision.rpc.errorCode ?? -32001);
          assert.equal(body.error.data.code, decision.code);
          if (decision.approval !== null) assert.deepEqual(body.error.data.approval, decision.approval);
        }
      }
    });
  }
});
