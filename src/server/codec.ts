// The Check method's own wire codec: CheckRequest bytes -> the object decode.ts reads, and the
// CheckResponse object respond.ts builds -> bytes, without protobufjs's generic reflection
// (measured in bench/run.ts: decode and encode were a third of an in-process Check).
//
// Field numbers are Envoy's (proto/envoy/service/auth/v3/*.proto, wire-compatible with
// upstream; test/server/codec.test.ts decodes and encodes against Envoy's upstream protos).
// Only the fields the pipeline reads are decoded; every other field is skipped by its wire type.
// One reading or none: a field whose wire type is not the declared one, a truncated field or a
// group makes the whole message refused (grpc-js answers INTERNAL, a deny for Envoy), never read
// some other way. Strings are read as UTF-8 with U+FFFD for invalid bytes, as protobufjs reads
// them on Node, so decode.ts's checks for U+FFFD see the same text.

import type { CheckRequestMessage, HeaderValueMessage, HttpRequestMessage, PeerMessage } from '../check/decode.js';
import type { CheckResponseObject } from '../check/respond.js';

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

class WireError extends Error {
  constructor(message: string) {
    super(`malformed CheckRequest: ${message}`);
  }
}

class Reader {
  pos: number;
  /** Where the message being read ends: narrowed to a nested message while it is read (fields). */
  end: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    end: number,
  ) {
    this.pos = start;
    this.end = end;
  }

  /** A varint as a number: exact below 2^53, which tags and lengths always are. */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new WireError('varint too long');
  }

  /** A varint as its 64 bits, exactly. */
  varint64(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError('truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new WireError('varint too long');
  }

  /** A length-delimited field's [start, end), the reader moved past it. */
  span(): [number, number] {
    const end = this.enter();
    const start = this.pos;
    this.pos = end;
    return [start, end];
  }

  /** A length-delimited field's end, left at its start (the caller reads it up to there). */
  enter(): number {
    const len = this.varint();
    if (len > this.end - this.pos) throw new WireError('truncated field');
    return this.pos + len;
  }

  string(): string {
    const end = this.enter();
    const start = this.pos;
    this.pos = end;
    return this.buf.toString('utf8', start, end);
  }

  skip(wire: number): void {
    switch (wire) {
      case VARINT:
        this.varint();
        return;
      case I64:
        if (this.end - this.pos < 8) throw new WireError('truncated field');
        this.pos += 8;
        return;
      case LEN:
        this.span();
        return;
      case I32:
        if (this.end - this.pos < 4) throw new WireError('truncated field');
        this.pos += 4;
        return;
      default:
        throw new WireError(`wire type ${wire}`);
    }
  }
}

/**
 * Reads the fields of the message in [start, end) with the same reader, its end narrowed to the
 * message's meanwhile (no reader per nested message); `field` returns false for a field it does
 * not read (skipped). The reader is left at `end`.
 */
function fields(r: Reader, start: number, end: number, field: (n: number, wire: number, r: Reader) => boolean): void {
  const outer = r.end;
  r.pos = start;
  r.end = end;
  while (r.pos < end) {
    const tag = r.varint();
    const n = Math.floor(tag / 8);
    const wire = tag & 7;
    if (n === 0) throw new WireError('field number 0');
    if (!field(n, wire, r)) r.skip(wire);
  }
  r.end = outer;
}

function expect(wire: number, want: number, what: string): void {
  if (wire !== want) throw new WireError(`${what} has wire type ${wire}`);
}

/**
 * One map<string, string> entry into `into`, a null-prototype object: a key such as
 * `__proto__` is then a key like any other, not a prototype assignment that silently drops it
 * (the upstream would receive a header Mandate never saw).
 */
function mapEntry(r: Reader, into: Record<string, string>): void {
  // fields() unrolled: one entry per header, the most frequent message of a CheckRequest.
  const end = r.enter();
  const outer = r.end;
  r.end = end;
  let key = '';
  let value = '';
  while (r.pos < end) {
    const tag = r.varint();
    const n = Math.floor(tag / 8);
    const wire = tag & 7;
    if (n === 0) throw new WireError('field number 0');
    if (n === 1 || n === 2) {
      expect(wire, LEN, 'a map entry');
      if (n === 1) key = r.string();
      else value = r.string();
    } else {
      r.skip(wire);
    }
  }
  r.end = outer;
  into[key] = value;
}

function peer(r: Reader): PeerMessage {
  const [s, e] = r.span();
  const out: PeerMessage = {};
  fields(r, s, e, (n, wire, f) => {
    if (n === 1) {
      expect(wire, LEN, 'Peer.address');
      const [as, ae] = f.span();
      fields(f, as, ae, (an, awire, af) => {
        if (an !== 1) return false;
        expect(awire, LEN, 'Address.socket_address');
        const [ss, se] = af.span();
        const socket: { address?: string; portValue?: number } = {};
        fields(af, ss, se, (sn, swire, sf) => {
          if (sn === 2) {
            expect(swire, LEN, 'SocketAddress.address');
            socket.address = sf.string();
            return true;
          }
          if (sn === 3) {
            expect(swire, VARINT, 'SocketAddress.port_value');
            socket.portValue = Number(sf.varint64() & 0xffffffffn); // uint32: the low 32 bits, as protobufjs reads it
            return true;
          }
          return false;
        });
        out.address = { socketAddress: socket };
        return true;
      });
      return true;
    }
    if (n === 4 || n === 5) {
      expect(wire, LEN, 'Peer.principal/certificate');
      if (n === 4) out.principal = f.string();
      else out.certificate = f.string();
      return true;
    }
    return false;
  });
  return out;
}

const HTTP_STRINGS: Readonly<Record<number, 'method' | 'path' | 'host' | 'scheme' | 'body'>> = { 2: 'method', 4: 'path', 5: 'host', 6: 'scheme', 11: 'body' };

function http(r: Reader): HttpRequestMessage {
  const [s, e] = r.span();
  const out: HttpRequestMessage = {};
  fields(r, s, e, (n, wire, f) => {
    const name = HTTP_STRINGS[n];
    if (name !== undefined) {
      expect(wire, LEN, `HttpRequest.${name}`);
      out[name] = f.string();
      return true;
    }
    if (n === 3) {
      expect(wire, LEN, 'HttpRequest.headers');
      mapEntry(f, (out.headers ??= Object.create(null) as Record<string, string>));
      return true;
    }
    if (n === 12) {
      expect(wire, LEN, 'HttpRequest.raw_body');
      const [bs, be] = f.span();
      out.rawBody = Buffer.from(f.buf.subarray(bs, be));
      return true;
    }
    if (n === 13) {
      expect(wire, LEN, 'HttpRequest.header_map');
      const [ms, me] = f.span();
      const headers: HeaderValueMessage[] = (out.headerMap ??= { headers: [] }).headers ?? [];
      fields(f, ms, me, (hn, hwire, hf) => {
        if (hn !== 1) return false;
        expect(hwire, LEN, 'HeaderMap.headers');
        const [hs, he] = hf.span();
        const h: HeaderValueMessage = {};
        fields(hf, hs, he, (vn, vwire, vf) => {
          if (vn < 1 || vn > 3) return false;
          expect(vwire, LEN, 'HeaderValue');
          if (vn === 1) h.key = vf.string();
          else if (vn === 2) h.value = vf.string();
          else {
            const [vs, ve] = vf.span();
            h.rawValue = Buffer.from(vf.buf.subarray(vs, ve));
          }
          return true;
        });
        headers.push(h);
        return true;
      });
      out.headerMap = { headers };
      return true;
    }
    return false;
  });
  return out;
}

/** CheckRequest bytes -> the object decode.ts reads (the shape @grpc/proto-loader gives). */
export function decodeCheckRequestWire(buf: Buffer): CheckRequestMessage {
  const r = new Reader(buf, 0, buf.length);
  const message: CheckRequestMessage = {};
  fields(r, 0, buf.length, (n, wire, f) => {
    if (n !== 1) return false;
    expect(wire, LEN, 'CheckRequest.attributes');
    const [as, ae] = f.span();
    const attributes: NonNullable<CheckRequestMessage['attributes']> = {};
    fields(f, as, ae, (an, awire, af) => {
      switch (an) {
        case 1:
        case 2:
          expect(awire, LEN, 'AttributeContext.source/destination');
          attributes[an === 1 ? 'source' : 'destination'] = peer(af);
          return true;
        case 4: {
          expect(awire, LEN, 'AttributeContext.request');
          const [rs, re] = af.span();
          const request: NonNullable<NonNullable<CheckRequestMessage['attributes']>['request']> = {};
          fields(af, rs, re, (rn, rwire, rf) => {
            if (rn === 1) {
              expect(rwire, LEN, 'Request.time');
              const [ts, te] = rf.span();
              const time: { seconds?: number } = {};
              fields(rf, ts, te, (tn, twire, tf) => {
                if (tn !== 1) return false;
                expect(twire, VARINT, 'Timestamp.seconds');
                time.seconds = Number(BigInt.asIntN(64, tf.varint64()));
                return true;
              });
              request.time = time;
              return true;
            }
            if (rn === 2) {
              expect(rwire, LEN, 'Request.http');
              request.http = http(rf);
              return true;
            }
            return false;
          });
          attributes.request = request;
          return true;
        }
        case 10:
          expect(awire, LEN, 'AttributeContext.context_extensions');
          mapEntry(af, (attributes.contextExtensions ??= Object.create(null) as Record<string, string>));
          return true;
        default:
          return false;
      }
    });
    message.attributes = attributes;
    return true;
  });
  return message;
}

// --- CheckResponse ------------------------------------------------------------------------
// Written in two passes into one buffer: sizes first (a nested message's length prefixes it),
// then the bytes. Proto3: fields at their default value are not written.

/** respond.ts's CheckResponseObject, with what a minimal answer may leave out. */
type WireResponse = Omit<CheckResponseObject, 'dynamicMetadata' | 'okResponse'> & {
  readonly dynamicMetadata?: CheckResponseObject['dynamicMetadata'];
  readonly okResponse?: { readonly headers: readonly HeaderOption[]; readonly headersToRemove?: readonly string[] };
};
type HeaderOption = NonNullable<CheckResponseObject['okResponse']>['headers'][number];
type StructValue = CheckResponseObject['dynamicMetadata']['fields'][string];

function varintSize(v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`cannot write ${v} as a varint`);
  let n = 1;
  for (let x = v; x >= 128; x = Math.floor(x / 128)) n++;
  return n;
}

/** A length-delimited field of `size` bytes, with its tag and length (field numbers here are < 16: one tag byte). */
const field = (size: number): number => 1 + varintSize(size) + size;
const strSize = (s: string): number => field(Buffer.byteLength(s, 'utf8'));
const varintField = (v: number): number => (v === 0 ? 0 : 1 + varintSize(v));

class Out {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  varint(v: number): void {
    let x = v;
    while (x >= 128) {
      this.buf[this.pos++] = (x % 128) | 0x80;
      x = Math.floor(x / 128);
    }
    this.buf[this.pos++] = x;
  }
  len(n: number, size: number): void {
    this.buf[this.pos++] = n * 8 + LEN;
    this.varint(size);
  }
  str(n: number, s: string): void {
    const size = Buffer.byteLength(s, 'utf8');
    this.len(n, size);
    this.pos += this.buf.write(s, this.pos, size, 'utf8');
  }
  uint(n: number, v: number): void {
    if (v === 0) return;
    this.buf[this.pos++] = n * 8 + VARINT;
    this.varint(v);
  }
}

const headerValueSize = (h: HeaderOption): number => (h.header.key === '' ? 0 : strSize(h.header.key)) + (h.header.value === '' ? 0 : strSize(h.header.value));
const headerOptionSize = (h: HeaderOption): number => field(headerValueSize(h)) + varintField(h.appendAction);

function writeHeaderOption(o: Out, n: number, h: HeaderOption): void {
  o.len(n, headerOptionSize(h));
  o.len(1, headerValueSize(h));
  if (h.header.key !== '') o.str(1, h.header.key);
  if (h.header.value !== '') o.str(2, h.header.value);
  o.uint(3, h.appendAction);
}

function valueSize(v: StructValue): number {
  if ('stringValue' in v) return strSize(v.stringValue);
  let list = 0;
  for (const item of v.listValue.values) list += field(strSize(item.stringValue));
  return field(list);
}

function writeValue(o: Out, v: StructValue): void {
  if ('stringValue' in v) {
    o.str(3, v.stringValue);
    return;
  }
  let list = 0;
  for (const item of v.listValue.values) list += field(strSize(item.stringValue));
  o.len(6, list);
  for (const item of v.listValue.values) {
    o.len(1, strSize(item.stringValue));
    o.str(3, item.stringValue);
  }
}

/** The CheckResponse object respond.ts builds -> bytes. */
export function encodeCheckResponseWire(response: WireResponse): Buffer {
  // status.code is written even when 0 (OK), as protobufjs writes a field that was set: a client
  // that reads `status.code` without proto3's default still sees the OK.
  const status = 1 + varintSize(response.status.code) + (response.status.message === undefined || response.status.message === '' ? 0 : strSize(response.status.message));
  let denied = -1;
  let deniedStatus = 0;
  const d = response.deniedResponse;
  if (d !== undefined) {
    deniedStatus = varintField(d.status.code);
    denied = field(deniedStatus) + (d.body === '' ? 0 : strSize(d.body));
    for (const h of d.headers) denied += field(headerOptionSize(h));
  }
  let ok = -1;
  const okr = response.okResponse;
  if (okr !== undefined) {
    ok = 0;
    for (const h of okr.headers) ok += field(headerOptionSize(h));
    for (const name of okr.headersToRemove ?? []) ok += strSize(name);
  }
  let metadata = -1;
  const entries = response.dynamicMetadata === undefined ? null : Object.entries(response.dynamicMetadata.fields);
  if (entries !== null) {
    metadata = 0;
    for (const [key, value] of entries) metadata += field(strSize(key) + field(valueSize(value)));
  }
  const total = field(status) + (denied < 0 ? 0 : field(denied)) + (ok < 0 ? 0 : field(ok)) + (metadata < 0 ? 0 : field(metadata));
  const o = new Out(Buffer.allocUnsafe(total));
  o.len(1, status);
  o.buf[o.pos++] = 1 * 8 + VARINT;
  o.varint(response.status.code);
  if (response.status.message !== undefined && response.status.message !== '') o.str(2, response.status.message);
  if (d !== undefined) {
    o.len(2, denied);
    o.len(1, deniedStatus);
    o.uint(1, d.status.code);
    for (const h of d.headers) writeHeaderOption(o, 2, h);
    if (d.body !== '') o.str(3, d.body);
  }
  if (okr !== undefined) {
    o.len(3, ok);
    for (const h of okr.headers) writeHeaderOption(o, 2, h);
    for (const name of okr.headersToRemove ?? []) o.str(5, name);
  }
  if (entries !== null) {
    o.len(4, metadata);
    for (const [key, value] of entries) {
      o.len(1, strSize(key) + field(valueSize(value)));
      o.str(1, key);
      o.len(2, valueSize(value));
      writeValue(o, value);
    }
  }
  if (o.pos !== total) throw new Error(`CheckResponse size ${o.pos} != ${total}`);
  return o.buf;
}
