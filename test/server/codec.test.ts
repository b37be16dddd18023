// The served Check codec (src/server/codec.ts): what it reads equals what protobufjs reads with
// our protos from the same bytes (unknown fields of every wire type skipped, the last of a
// repeated singular field kept, invalid UTF-8 as U+FFFD, int64 and uint32 edges), and a message
// that is not one reading (a wire type other than the declared one, a truncated field, a group)
// is refused whole: grpc-js answers with an error, a deny for Envoy, and the server keeps serving.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeCheckRequestWire } from '../../src/server/codec.js';
import { PROTOBUFJS_CHECK } from '../../src/server/protos.js';
import { encodeUpstream, sendRawCheck } from '../helpers/raw-client.js';
import { checkRequest } from '../helpers/requests.js';
import { startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient, type CheckClient } from '../helpers/upstream.js';
import { codeOf } from '../helpers/task-fixture.js';

const SUPPORT = 'spiffe://example.org/ns/support/sa/support-agent';

/** Protobuf wire pieces, written by hand so the tests can say exactly what is on the wire. */
const varint = (v: number | bigint): number[] => {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x > 0x7fn) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
};
const tag = (n: number, wire: number): number[] => varint(n * 8 + wire);
const len = (n: number, body: number[] | Buffer): number[] => [...tag(n, 2), ...varint(body.length), ...body];
const str = (n: number, s: string | Buffer): number[] => len(n, typeof s === 'string' ? Buffer.from(s) : s);

function request(http: number[], extra: number[] = []): Buffer {
  const attributes = [...len(1, [...str(4, SUPPORT)]), ...len(4, [...len(1, [...tag(1, 0), ...varint(-5)]), ...len(2, http)]), ...extra];
  return Buffer.from(len(1, attributes));
}

/** The fields decode.ts reads, from either decoder. */
function read(m: unknown): unknown {
  const a = (m as { attributes: Record<string, unknown> }).attributes;
  const h = (a['request'] as { http: Record<string, unknown>; time?: { seconds?: unknown } }).http;
  return {
    principal: (a['source'] as { principal?: string } | undefined)?.principal,
    seconds: Number((a['request'] as { time?: { seconds?: unknown } }).time?.seconds ?? 0),
    method: h['method'],
    path: h['path'],
    host: h['host'],
    headers: h['headers'] === undefined ? undefined : { ...(h['headers'] as object) },
    body: h['body'],
    rawBody: h['rawBody'] === undefined ? undefined : Buffer.from(h['rawBody'] as Uint8Array).toString('hex'),
    headerMap: ((h['headerMap'] as { headers?: Record<string, unknown>[] } | undefined)?.headers ?? []).map((x) => ({ key: x['key'], value: x['value'] })),
  };
}

describe('the served CheckRequest codec', () => {
  it('reads what protobufjs reads: unknown fields of every wire type skipped, the last repeated value kept, U+FFFD for bad UTF-8', () => {
    const http = [
      ...str(2, 'GET'),
      ...str(4, '/first'),
      ...tag(99, 0), ...varint(123456789),          // unknown varint
      ...tag(98, 1), 1, 2, 3, 4, 5, 6, 7, 8,          // unknown fixed64
      ...tag(97, 5), 1, 2, 3, 4,                      // unknown fixed32
      ...str(96, 'unknown bytes'),                    // unknown length-delimited
      ...str(4, Buffer.from([0x2f, 0x61, 0xc3, 0x28])), // the path again, with invalid UTF-8: the last wins
      ...str(5, 'tools.example.org'),
      ...len(3, [...str(1, 'x-a'), ...str(2, 'one')]),
      ...len(3, [...str(1, 'x-a'), ...str(2, 'two')]), // a map key twice: the last wins
      ...str(11, 'body text'),
      ...str(12, Buffer.from([0, 1, 2])),
      ...len(13, [...len(1, [...str(1, 'k'), ...str(2, 'v')]), ...len(1, [...str(1, 'k2')])]),
    ];
    const bytes = request(http);
    const ours = read(decodeCheckRequestWire(bytes));
    assert.deepEqual(ours, read(PROTOBUFJS_CHECK.decode(bytes)));
    assert.equal((ours as { path: string }).path, '/a\uFFFD(');
    assert.equal((ours as { seconds: number }).seconds, -5, 'int64 seconds, negative');
  });

  it('reads every field of an upstream-encoded request as protobufjs does', () => {
    const bytes = encodeUpstream(checkRequest('POST', '/cases?x=1', { principal: SUPPORT, rawBody: Buffer.from('{"a":1}'), headerMap: [{ key: 'content-type', value: 'application/json' }] }));
    assert.deepEqual(read(decodeCheckRequestWire(bytes)), read(PROTOBUFJS_CHECK.decode(bytes)));
  });

  it('keeps a header or context extension named __proto__ as a key like any other', () => {
    const bytes = request([...str(2, 'GET'), ...str(4, '/'), ...len(3, [...str(1, '__proto__'), ...str(2, 'sent')]), ...len(3, [...str(1, 'x-a'), ...str(2, 'one')])], len(10, [...str(1, '__proto__'), ...str(2, 'ext')]));
    const m = decodeCheckRequestWire(bytes) as { attributes: { request: { http: { headers: Record<string, string> } }; contextExtensions: Record<string, string> } };
    assert.deepEqual(Object.entries(m.attributes.request.http.headers), [['__proto__', 'sent'], ['x-a', 'one']]);
    assert.deepEqual(Object.entries(m.attributes.contextExtensions), [['__proto__', 'ext']]);
  });

  const refused: [string, Buffer][] = [
    ['a string field sent as a varint', request([...tag(2, 0), ...varint(3)])],
    ['a message field sent as fixed32', Buffer.from([...tag(1, 5), 1, 2, 3, 4])],
    ['a field cut short', request(str(2, 'GET')).subarray(0, -1)],
    ['a length beyond the message', Buffer.from([...tag(1, 2), ...varint(1000), 1, 2])],
    ['a group (wire type 3)', Buffer.from([...tag(1, 3), ...tag(1, 4)])],
    ['field number 0', Buffer.from([...tag(0, 0), 0])],
    ['a varint of eleven bytes', Buffer.from([...tag(99, 0), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])],
  ];
  for (const [name, bytes] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => decodeCheckRequestWire(bytes), /^Error: malformed CheckRequest: /);
    });
  }
});

describe('a server given bytes its codec refuses', () => {
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

  it('answers with a gRPC error (a deny for Envoy) and keeps deciding', async () => {
    for (const [, bytes] of refused()) {
      await assert.rejects(sendRawCheck(running.address, bytes), (err: { code?: number }) => typeof err.code === 'number' && err.code !== 0);
    }
    const allowed = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT }));
    assert.equal(codeOf(allowed), null);
  });
});

function refused(): [string, Buffer][] {
  return [
    ['wire type', request([...tag(2, 0), ...varint(3)])],
    ['truncated', request(str(2, 'GET')).subarray(0, -1)],
    ['group', Buffer.from([...tag(1, 3), ...tag(1, 4)])],
  ];
}
