// The served Check codec (src/server/codec.ts): what it reads equals what protobufjs reads with
// our protos from the same bytes (unknown fields of every wire type skipped, the last of a
// repeated singular field kept, invalid UTF-8 as U+FFFD, int64 and uint32 edges), and a message
// that is not one reading (a wire type other than the declared one, a truncated field, a group)
// is refused whole: grpc-js answers with an error, a deny for Envoy, and the server keeps serving.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeCheckRequestWire, encodeCheckResponseFrame, encodeCheckResponseWire, rememberedFields, remembersValuesOf } from '../../src/server/codec.js';
import { PROTOBUFJS_CHECK } from '../../src/server/protos.js';
import { decodeCheckRequest, type CheckRequestMessage } from '../../src/check/decode.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { encodeUpstream, sendRawCheck } from '../helpers/raw-client.js';
import { checkRequest } from '../helpers/requests.js';
import { startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient, type CheckClient } from '../helpers/upstream.js';
import { codeOf } from '../helpers/task-fixture.js';
import { seeded } from '../helpers/generate.js';
import { loadUpstreamRoot } from '../helpers/upstream.js';
import type { CheckResponseObject } from '../../src/check/respond.js';

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
  const a = (m as { attributes?: Record<string, unknown> }).attributes ?? {};
  const peerOf = (p: unknown) => {
    const x = p as { address?: { socketAddress?: { address?: string; portValue?: number } }; principal?: string; certificate?: string } | undefined;
    return x === undefined ? undefined : { address: x.address?.socketAddress?.address, port: x.address?.socketAddress?.portValue, principal: x.principal, certificate: x.certificate };
  };
  const h = (a['request'] as { http?: Record<string, unknown> } | undefined)?.http ?? {};
  return {
    principal: (a['source'] as { principal?: string } | undefined)?.principal,
    seconds: Number((a['request'] as { time?: { seconds?: unknown } } | undefined)?.time?.seconds ?? 0),
    method: h['method'],
    path: h['path'],
    host: h['host'],
    // The served codec gives the headers as a Map (decode.ts takes both), protobufjs as an object.
    headers: h['headers'] === undefined ? undefined : h['headers'] instanceof Map ? Object.fromEntries(h['headers']) : { ...(h['headers'] as object) },
    body: h['body'],
    rawBody: h['rawBody'] === undefined ? undefined : Buffer.from(h['rawBody'] as Uint8Array).toString('hex'),
    headerMap: ((h['headerMap'] as { headers?: Record<string, unknown>[] } | undefined)?.headers ?? []).map((x) => ({
      key: x['key'],
      value: x['value'],
      rawValue: x['rawValue'] === undefined ? undefined : Buffer.from(x['rawValue'] as Uint8Array).toString('hex'),
    })),
    scheme: h['scheme'],
    source: peerOf(a['source']),
    destination: peerOf(a['destination']),
    extensions: a['contextExtensions'] === undefined ? undefined : { ...(a['contextExtensions'] as object) },
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

  it('has decode.ts read the header Map it gives as it reads protobufjs\'s object: the same header map or the same refusal', () => {
    // The codec's Map is taken as it is when every name is plain (decode.ts decodeHeaders); each
    // case here needs the close look instead, and must come out as from the object path.
    const cases: [what: string, headers: [string, string][], refused: string | null][] = [
      ['plain names', [[':authority', 'tools.example.org'], ['x-tenant-id', 'acme'], ['user-agent', 'a/1']], null],
      ['a name in upper case', [['X-Tenant-Id', 'acme'], ['user-agent', 'a/1']], null],
      ['two spellings of one name, joined', [['x-trace', 'a'], ['X-Trace', 'b']], null],
      ['two spellings of a single-valued name', [['content-type', 'a'], ['Content-Type', 'b']], 'header "content-type" is repeated'],
      ['"_" beside "-"', [['x-tenant-id', 'acme'], ['x_tenant_id', 'globex']], 'headers "x-tenant-id" and "x_tenant_id" are one header to an upstream that reads "_" as "-"'],
      ['a lone "_" name', [['x_custom', 'v']], null],
      ['U+FFFD in a value', [['x-tenant-id', 'ac\uFFFDme']], 'header "x-tenant-id" is not valid UTF-8'],
      ['U+FFFD in a name', [['x-te\uFFFDnant', 'acme']], 'header "x-te?nant" is not valid UTF-8'],
    ];
    for (const [what, headers, refused] of cases) {
      const bytes = request([...str(2, 'GET'), ...str(4, '/tickets/T-1'), ...headers.flatMap(([k, v]) => len(3, [...str(1, k), ...str(2, v)]))]);
      const served = decoded(decodeCheckRequestWire(bytes));
      assert.deepEqual(served, decoded(PROTOBUFJS_CHECK.decode(bytes)), what);
      if (refused === null) assert.equal((served as { ok: boolean }).ok, true, what);
      else assert.deepEqual({ ok: (served as { ok: boolean }).ok, message: (served as { message?: string }).message }, { ok: false, message: refused }, what);
    }
  });

  it('keeps a header or context extension named __proto__ as a key like any other', () => {
    const bytes = request([...str(2, 'GET'), ...str(4, '/'), ...len(3, [...str(1, '__proto__'), ...str(2, 'sent')]), ...len(3, [...str(1, 'x-a'), ...str(2, 'one')])], len(10, [...str(1, '__proto__'), ...str(2, 'ext')]));
    const m = decodeCheckRequestWire(bytes) as { attributes: { request: { http: { headers: ReadonlyMap<string, string> } }; contextExtensions: Record<string, string> } };
    assert.deepEqual([...m.attributes.request.http.headers], [['__proto__', 'sent'], ['x-a', 'one']]);
    assert.deepEqual(Object.entries(m.attributes.contextExtensions), [['__proto__', 'ext']]);
    // Nothing of Object.prototype behind the extensions: a name not sent reads as absent.
    assert.equal((m.attributes.contextExtensions as Record<string, unknown>)['hasOwnProperty'], undefined);
    assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(m.attributes.contextExtensions)), null);
    // Sent twice, and beside names Object.prototype has: the first position, the last value.
    const entry = (k: string, v: string) => len(3, [...str(1, k), ...str(2, v)]);
    const twice = decodeCheckRequestWire(request([...str(2, 'GET'), ...str(4, '/'), ...entry('__proto__', 'a'), ...entry('toString', 't'), ...entry('__proto__', 'b'), ...entry('constructor', 'c')])) as typeof m;
    assert.deepEqual([...twice.attributes.request.http.headers], [['__proto__', 'b'], ['toString', 't'], ['constructor', 'c']]);
    // The same request through decode.ts, from the codec's Map and from protobufjs's object: one header map.
    const fromCodec = decodeCheckRequest(twice as CheckRequestMessage, DEFAULTS, 0);
    const fromProtobufjs = decodeCheckRequest(PROTOBUFJS_CHECK.decode(request([...str(2, 'GET'), ...str(4, '/'), ...entry('__proto__', 'a'), ...entry('toString', 't'), ...entry('__proto__', 'b'), ...entry('constructor', 'c')])) as CheckRequestMessage, DEFAULTS, 0);
    assert.ok(fromCodec.ok && fromProtobufjs.ok);
    assert.deepEqual([...fromCodec.value.headers], [['__proto__', 'b'], ['tostring', 't'], ['constructor', 'c']]);
    assert.deepEqual([...fromCodec.value.headers], [...fromProtobufjs.value.headers]);
  });

  it('reads each field anew when a string of the same length differs in one byte (its remembered string is never reused then)', () => {
    // The decoder remembers the last short string read at each place (codec.ts StringSlot).
    const message = (v: string) => ({
      attributes: {
        source: { address: { socketAddress: { address: v, portValue: 1 } }, principal: v },
        destination: { address: { socketAddress: { address: v, portValue: 2 } }, principal: v },
        request: { http: { method: v, path: v, host: v, scheme: v, headers: { 'x-tenant-id': v, [`x-${v}`]: v } } },
        contextExtensions: { app: v },
      },
    });
    const rawMap = (v: string) => ({ attributes: { request: { http: { headerMap: { headers: [{ key: 'x-tenant-id', value: v }, { key: 'user-agent', value: v }] } } } } });
    const values = ['acme', 'acmf', 'bcme', 'acme', 'é', 'f', 'a'.repeat(63) + 'b', 'a'.repeat(64), 'a'.repeat(63) + 'c', 'a'.repeat(65), 'a'.repeat(64) + 'b', 'acme'];
    for (const build of [message, rawMap]) {
      for (const v of values) {
        const bytes = encodeUpstream(build(v));
        assert.deepEqual(read(decodeCheckRequestWire(bytes)), read(PROTOBUFJS_CHECK.decode(bytes)), JSON.stringify(v));
      }
    }
  });

  it('never remembers the values of headers that carry credentials, nor the path', () => {
    for (const name of ['authorization', 'cookie', 'txn-token', 'x-forwarded-client-cert', 'mcp-session-id', ':path', 'x-api-key']) assert.equal(remembersValuesOf(name), false, name);
    for (const name of [':authority', 'x-tenant-id', 'user-agent']) assert.equal(remembersValuesOf(name), true, name);
    // Nor the path (its query can hold an access token), the body or a certificate.
    assert.deepEqual([...rememberedFields()].sort(), ['destinationAddress', 'destinationPrincipal', 'extension', 'host', 'method', 'scheme', 'sourceAddress', 'sourcePrincipal']);
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

// Differential runs against protobufjs with Envoy's upstream protos, seeded: the seed is printed,
// MANDATE_FUZZ_SEED=<seed> replays a run.
const SEED = process.env['MANDATE_FUZZ_SEED'] !== undefined ? Number(process.env['MANDATE_FUZZ_SEED']) : Date.now() % 1_000_000;

/** Strings around the codec's thresholds (16 and 64 characters, 127 bytes), ASCII or not, astral too. */
function text(rand: () => number): string {
  const alphabets = ['abcdefghij-_/:.', 'aé€', 'x\u{1F600}', 'ASCII only here ', '\u0000\u007f\u0080\uFFFD'];
  const alphabet = [...(alphabets[Math.floor(rand() * alphabets.length)] as string)];
  const lengths = [0, 1, 15, 16, 17, 63, 64, 65, 126, 127, 128, 300];
  const length = rand() < 0.6 ? (lengths[Math.floor(rand() * lengths.length)] as number) : Math.floor(rand() * 200);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  return out;
}

/** What decode.ts makes of a message: the outcome, with the header map's entries in order. */
function decoded(m: unknown): unknown {
  const d = decodeCheckRequest(m as CheckRequestMessage, { ...DEFAULTS, maxHeaders: 1000, maxHeaderBytes: 1 << 20 }, 0);
  if (!d.ok) return d;
  const body = d.value.body;
  return { ok: true, ...d.value, headers: [...d.value.headers], extensions: { ...d.value.extensions }, body: body === null || typeof body === 'string' ? body : Buffer.from(body).toString('hex') };
}

const UPSTREAM_RESPONSE = loadUpstreamRoot().lookupType('envoy.service.auth.v3.CheckResponse');

describe('the served codec against protobufjs and the upstream protos, on generated messages', () => {
  it(`reads every generated request as protobufjs does (seed ${SEED})`, () => {
    const rand = seeded(SEED);
    const names = [':authority', ':path', 'authorization', 'x-tenant-id', 'te', 'x-envoy-internal', 'x-tenant-iX', 'X-Tenant-Id', 'cookie', 'Cookie', 'mcp-name', 'x_tenant_id'];
    let readToTheEnd = 0;
    for (let i = 0; i < 400; i++) {
      const headers: Record<string, string> = {};
      for (let h = Math.floor(rand() * 8); h > 0; h--) headers[rand() < 0.7 ? (names[Math.floor(rand() * names.length)] as string) : text(rand)] = text(rand);
      const port = [0, 1, 127, 128, 2 ** 28 - 1, 2 ** 28, 2 ** 32 - 1][Math.floor(rand() * 7)] as number;
      const seconds = ['0', '-1', '1795000000', String(2 ** 49 - 1), String(2 ** 49), '-9007199254740991', '9007199254740991'][Math.floor(rand() * 7)] as string;
      // Half of them a request decode.ts reads up to its headers (a known method, a path).
      const plausible = rand() < 0.5;
      const http: Record<string, unknown> = { method: plausible ? 'GET' : text(rand), path: plausible ? '/tickets/T-1' : text(rand), host: plausible ? '' : text(rand), scheme: text(rand) };
      if (rand() < 0.5) http['headers'] = headers;
      else http['headerMap'] = { headers: Object.entries(headers).map(([key, value]) => (rand() < 0.5 ? { key, value } : { key, rawValue: Buffer.from(value) })) };
      if (rand() < 0.3) http['body'] = text(rand);
      if (rand() < 0.3) http['rawBody'] = Buffer.from(text(rand));
      const request = {
        attributes: {
          source: { address: { socketAddress: { address: text(rand), portValue: port } }, principal: text(rand), certificate: text(rand) },
          destination: { address: { socketAddress: { address: text(rand), portValue: 8443 } } },
          request: { time: { seconds, nanos: 5 }, http },
          contextExtensions: rand() < 0.5 ? {} : { [text(rand)]: text(rand), app: text(rand) },
        },
      };
      const bytes = encodeUpstream(request);
      const served = decodeCheckRequestWire(bytes);
      const reference = PROTOBUFJS_CHECK.decode(bytes);
      assert.deepEqual(read(served), read(reference), `request ${i} of seed ${SEED}`);
      // And decode.ts reads both alike (the codec's headers are a Map, taken as they are when in form).
      const both = decoded(served);
      assert.deepEqual(both, decoded(reference), `decoded request ${i} of seed ${SEED}`);
      if ((both as { ok: boolean }).ok) readToTheEnd++;
    }
    assert.ok(readToTheEnd >= 50, `only ${readToTheEnd} generated requests decoded whole`);
  });

  it(`reads a damaged request as a plain protobuf reader does, or refuses it (seed ${SEED})`, () => {
    // protobufjs is no oracle for damaged bytes (a string inside a nested message may run past
    // the message's end there); oracleRead below slices each nested message out first.
    const rand = seeded(SEED + 1);
    const base = encodeUpstream(checkRequest('POST', '/cases', { principal: SUPPORT, headers: { 'x-tenant-id': 'acme', 'content-type': 'application/json' }, body: '{"a":1}', extensions: { app: 'support' } }));
    let read0 = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(base);
      for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      let want: unknown;
      try {
        want = oracleRead(bytes);
      } catch {
        want = 'refused';
      }
      let got: unknown;
      try {
        got = read(decodeCheckRequestWire(bytes));
      } catch (err) {
        assert.match(String(err), /^Error: malformed CheckRequest: /);
        got = 'refused';
      }
      assert.deepEqual(got, want, `damaged request ${i} of seed ${SEED}: ${bytes.toString('hex')}`);
      if (got !== 'refused') read0++;
    }
    assert.ok(read0 > 300, `only ${read0} damaged requests were read at all`);
  });

  it(`writes every generated response as protobufjs does, byte for byte (seed ${SEED})`, () => {
    const rand = seeded(SEED + 2);
    const header = () => ({ header: { key: text(rand), value: text(rand) }, appendAction: Math.floor(rand() * 4) });
    for (let i = 0; i < 400; i++) {
      const fields: Record<string, { stringValue: string } | { listValue: { values: { stringValue: string }[] } }> = {};
      for (let f = Math.floor(rand() * 5); f > 0; f--) {
        fields[text(rand)] = rand() < 0.6 ? { stringValue: text(rand) } : { listValue: { values: Array.from({ length: Math.floor(rand() * 4) }, () => ({ stringValue: text(rand) })) } };
      }
      const allowed = rand() < 0.5;
      const response = (allowed
        ? { status: { code: 0 }, okResponse: { headers: Array.from({ length: Math.floor(rand() * 4) }, header), headersToRemove: Array.from({ length: Math.floor(rand() * 3) }, () => text(rand)) }, dynamicMetadata: { fields } }
        : { status: { code: 7, message: text(rand) }, deniedResponse: { status: { code: 403 + Math.floor(rand() * 300) }, headers: Array.from({ length: Math.floor(rand() * 3) }, header), body: text(rand) }, dynamicMetadata: { fields } }) as unknown as CheckResponseObject;
      const ours = encodeCheckResponseWire(response);
      // Proto3 leaves a zero or an empty string out; protobufjs writes one it was given (both read the same).
      const defaults = new Set(['appendAction', 'body', 'message', 'key', 'value']);
      const given = JSON.parse(JSON.stringify(response), (k, v) => (defaults.has(k) && (v === 0 || v === '') ? undefined : v));
      assert.equal(ours.toString('hex'), Buffer.from(PROTOBUFJS_CHECK.encode(given)).toString('hex'), `response ${i} of seed ${SEED}`);
      // As sent: the same bytes behind gRPC's prefix (flag 0, big-endian length).
      const framed = encodeCheckResponseFrame(response);
      assert.equal(framed.toString('hex'), `00${ours.length.toString(16).padStart(8, '0')}${ours.toString('hex')}`, `framed response ${i}`);
      // And Envoy's own definition reads it back as built.
      const back = UPSTREAM_RESPONSE.toObject(UPSTREAM_RESPONSE.decode(ours), { defaults: true });
      assert.deepEqual(back, UPSTREAM_RESPONSE.toObject(UPSTREAM_RESPONSE.fromObject(response), { defaults: true }));
    }
  });
});

/**
 * The oracle for damaged bytes: a plain protobuf reader, every nested message sliced out before
 * it is read, built into read()'s shape by Envoy's field numbers with the codec's rules (the
 * last of a field sent twice wins, header_map lists add up, a known field with another wire type
 * or a tag beyond 32 bits refuses the whole message).
 */
function oracleRead(bytes: Buffer): unknown {
  type Field = { n: number; wire: number; v: bigint; b: Buffer };
  const parse = (buf: Buffer): Field[] => {
    const out: Field[] = [];
    let pos = 0;
    const varint = (): bigint => {
      let r = 0n;
      for (let i = 0; i < 10; i++) {
        if (pos >= buf.length) throw new Error('truncated');
        const b = buf[pos++] as number;
        r |= BigInt(b & 0x7f) << BigInt(7 * i);
        if (b < 0x80) return BigInt.asUintN(64, r);
      }
      throw new Error('varint too long');
    };
    while (pos < buf.length) {
      const tag = varint();
      if (tag >= 2n ** 32n) throw new Error('tag beyond 32 bits');
      const n = Number(tag >> 3n);
      const wire = Number(tag & 7n);
      if (n === 0) throw new Error('field 0');
      const f: Field = { n, wire, v: 0n, b: Buffer.alloc(0) };
      if (wire === 0) f.v = varint();
      else if (wire === 1 || wire === 5) {
        const size = wire === 1 ? 8 : 4;
        if (buf.length - pos < size) throw new Error('truncated');
        pos += size;
      } else if (wire === 2) {
        const len = varint();
        if (len > BigInt(buf.length - pos)) throw new Error('truncated');
        f.b = buf.subarray(pos, pos + Number(len));
        pos += Number(len);
      } else throw new Error('wire type');
      out.push(f);
    }
    return out;
  };
  const want = (f: Field, wire: number) => {
    if (f.wire !== wire) throw new Error('wire type of a known field');
    return f;
  };
  const str = (f: Field) => want(f, 2).b.toString('utf8');
  const map = (fields: Field[], n: number, into: Record<string, string> | undefined) => {
    let out = into;
    for (const f of fields) {
      if (f.n !== n) continue;
      let key = '';
      let value = '';
      for (const e of parse(want(f, 2).b)) {
        if (e.n === 1) key = str(e);
        else if (e.n === 2) value = str(e);
      }
      out ??= Object.create(null) as Record<string, string>;
      out[key] = value;
    }
    return out;
  };
  const peer = (b: Buffer) => {
    const p: Record<string, unknown> = {};
    for (const f of parse(b)) {
      if (f.n === 1) {
        for (const a of parse(want(f, 2).b)) {
          if (a.n !== 1) continue;
          const socket: Record<string, unknown> = {};
          for (const sf of parse(want(a, 2).b)) {
            if (sf.n === 2) socket['address'] = str(sf);
            else if (sf.n === 3) socket['portValue'] = Number(want(sf, 0).v & 0xffffffffn);
          }
          p['address'] = { socketAddress: socket };
        }
      } else if (f.n === 4) p['principal'] = str(f);
      else if (f.n === 5) p['certificate'] = str(f);
    }
    return p;
  };
  const message: Record<string, unknown> = {};
  for (const top of parse(bytes)) {
    if (top.n !== 1) continue;
    const attrs: Record<string, unknown> = {};
    const attrFields = parse(want(top, 2).b);
    for (const a of attrFields) {
      if (a.n === 1 || a.n === 2) attrs[a.n === 1 ? 'source' : 'destination'] = peer(want(a, 2).b);
      else if (a.n === 4) {
        const request: Record<string, unknown> = {};
        for (const r of parse(want(a, 2).b)) {
          if (r.n === 1) {
            const time: Record<string, unknown> = {};
            for (const t of parse(want(r, 2).b)) if (t.n === 1) time['seconds'] = Number(BigInt.asIntN(64, want(t, 0).v));
            request['time'] = time;
          } else if (r.n === 2) {
            const http: Record<string, unknown> = {};
            const fields = parse(want(r, 2).b);
            for (const h of fields) {
              const name = ({ 2: 'method', 4: 'path', 5: 'host', 6: 'scheme', 11: 'body' } as Record<number, string>)[h.n];
              if (name !== undefined) http[name] = str(h);
              else if (h.n === 3) http['headers'] = map([h], 3, http['headers'] as Record<string, string> | undefined);
              else if (h.n === 12) http['rawBody'] = Buffer.from(want(h, 2).b);
              else if (h.n === 13) {
                const list = ((http['headerMap'] as { headers: unknown[] } | undefined)?.headers ?? []) as Record<string, unknown>[];
                for (const m of parse(want(h, 2).b)) {
                  if (m.n !== 1) continue;
                  const hv: Record<string, unknown> = {};
                  for (const v of parse(want(m, 2).b)) {
                    if (v.n === 1) hv['key'] = str(v);
                    else if (v.n === 2) hv['value'] = str(v);
                    else if (v.n === 3) hv['rawValue'] = Buffer.from(want(v, 2).b);
                  }
                  list.push(hv);
                }
                http['headerMap'] = { headers: list };
              }
            }
            request['http'] = http;
          }
        }
        attrs['request'] = request;
      } else if (a.n === 10) attrs['contextExtensions'] = map([a], 10, attrs['contextExtensions'] as Record<string, string> | undefined);
    }
    message['attributes'] = attrs;
  }
  return read(message);
}

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
