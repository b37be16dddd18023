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

// Buffer's own UTF-8 slice (what toString('utf8', start, end) calls after its argument
// handling: tens of ns a string, ~25 strings a Check). Invalid bytes read as U+FFFD either way.
// Not in Node's typings; present on Buffer since early Node, toString where it is not.
type Utf8Slice = (this: Buffer, start: number, end: number) => string;
const utf8Slice: Utf8Slice =
  (Buffer.prototype as unknown as { utf8Slice?: Utf8Slice }).utf8Slice ??
  function (this: Buffer, start: number, end: number): string {
    return this.toString('utf8', start, end);
  };

type Latin1Write = (this: Buffer, s: string, offset: number, length: number) => number;
const latin1Write: Latin1Write =
  (Buffer.prototype as unknown as { latin1Write?: Latin1Write }).latin1Write ??
  function (this: Buffer, s: string, offset: number, length: number): number {
    return this.write(s, offset, length, 'latin1');
  };

/**
 * The last short string read at one place of the message (a field, or the value of one header
 * name), with the bytes it was read from. A mesh sends the same method, host, scheme, peers and
 * most header values over and over: comparing up to SLOT_BYTES bytes in JS costs ~25 ns, a call
 * into C++ to decode them ~80 ns, and a Check reads ~20 such strings. The text is what decoding
 * those very bytes gives (a pure function of them); a longer string is always decoded.
 */
class StringSlot {
  readonly bytes = new Uint8Array(SLOT_BYTES);
  length = -1;
  text = '';
}
const SLOT_BYTES = 64;

/**
 * Strings by their UTF-8 length, each with its bytes and the slot for the values of that name
 * (null for names whose values are credentials: see CREDENTIAL_HEADERS).
 */
type KnownStrings = readonly (readonly (readonly [Uint8Array, string, StringSlot | null])[] | undefined)[];

/**
 * Headers that carry credentials, and `:path` (its query can hold an access token): their values
 * are never remembered, so that how long a Check takes never depends on how much of one matches
 * the value another client sent before it (nor is HttpRequest.path: see http()).
 */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'txn-token', 'x-forwarded-client-cert', 'mcp-session-id', ':path']);

function knownStrings(list: readonly string[]): KnownStrings {
  const byLength: (readonly [Uint8Array, string, StringSlot | null])[][] = [];
  for (const text of list) {
    const bytes = Buffer.from(text, 'utf8');
    (byLength[bytes.length] ??= []).push([bytes, text, CREDENTIAL_HEADERS.has(text) ? null : new StringSlot()]);
  }
  return byLength;
}

/**
 * Header names Envoy sends on most requests, and those Mandate reads: read as these very
 * strings (no UTF-8 decode, and a string V8 has already hashed for the Map lookups after).
 * Any other name is decoded as it comes.
 */
const HEADER_NAMES = knownStrings([
  ':authority', ':method', ':path', ':scheme', 'accept', 'accept-encoding', 'accept-language', 'authorization',
  'content-length', 'content-type', 'cookie', 'host', 'te', 'traceparent', 'tracestate', 'txn-token', 'user-agent',
  'x-envoy-expected-rq-timeout-ms', 'x-envoy-internal', 'x-forwarded-client-cert', 'x-forwarded-for', 'x-forwarded-proto',
  'x-request-id', 'x-tenant-id', 'mcp-protocol-version', 'mcp-session-id', 'mcp-method', 'mcp-name',
]);

/** Whether the values of a header name are remembered between CheckRequests (StringSlot); never for credentials. */
export function remembersValuesOf(name: string): boolean {
  for (const [, text, slot] of HEADER_NAMES[Buffer.byteLength(name, 'utf8')] ?? []) if (text === name) return slot !== null;
  return false;
}

class WireError extends Error {
  constructor(message: string) {
    super(`malformed CheckRequest: ${message}`);
  }
}

class Reader {
  pos: number;
  /** The slot of the name knownString last read, null when it read another name. */
  knownSlot: StringSlot | null = null;
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
    return start === end ? '' : utf8Slice.call(this.buf, start, end);
  }

  /** A string, as string() reads it, remembered in `slot` when short (StringSlot). */
  slotString(slot: StringSlot): string {
    const end = this.enter();
    const start = this.pos;
    this.pos = end;
    const n = end - start;
    if (n === 0) return '';
    const buf = this.buf;
    if (n > SLOT_BYTES) return utf8Slice.call(buf, start, end);
    const kept = slot.bytes;
    if (slot.length === n) {
      let i = 0;
      while (i < n && kept[i] === buf[start + i]) i++;
      if (i === n) return slot.text;
    }
    const text = utf8Slice.call(buf, start, end);
    for (let i = 0; i < n; i++) kept[i] = buf[start + i] as number;
    slot.length = n;
    slot.text = text;
    return text;
  }

  /** A string that is most often one of `known` (header names): compared as bytes, no new string then. */
  knownString(known: KnownStrings): string {
    const end = this.enter();
    const start = this.pos;
    this.pos = end;
    const n = end - start;
    const candidates = known[n];
    if (candidates !== undefined) {
      const buf = this.buf;
      // Indexed, not destructured (a tuple's destructuring goes through the iterator protocol);
      // the last byte first: names of one length often share a prefix (x-forwarded-, accept-).
      next: for (let c = 0; c < candidates.length; c++) {
        const candidate = candidates[c] as (typeof candidates)[number];
        const bytes = candidate[0];
        if (buf[end - 1] !== bytes[n - 1]) continue;
        for (let i = 0; i < n - 1; i++) if (buf[start + i] !== bytes[i]) continue next;
        this.knownSlot = candidate[2];
        return candidate[1];
      }
    }
    this.knownSlot = null;
    return start === end ? '' : utf8Slice.call(this.buf, start, end);
  }

  /** A length-delimited field's bytes, copied (the request's buffer is grpc-js's to reuse). */
  bytes(): Buffer {
    const end = this.enter();
    const start = this.pos;
    this.pos = end;
    return Buffer.from(this.buf.subarray(start, end));
  }

  /**
   * A varint of at most `maxBytes` bytes as a number (exact: below 2^(7 * maxBytes)), or -1 with
   * the reader left where it was when it is longer (or truncated: the caller's full read says so).
   */
  private shortVarint(maxBytes: number): number {
    const start = this.pos;
    let result = 0;
    let mul = 1; // 2 ** (7 * i), kept by multiplying: `**` is a call to pow per byte
    for (let i = 0; i < maxBytes && this.pos < this.end; i++) {
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    this.pos = start;
    return -1;
  }

  /** A uint32 field: the low 32 bits of the varint, as protobufjs reads it. */
  uint32(): number {
    // Up to four bytes (below 2^28) the number is the value; longer ones through BigInt.
    const short = this.shortVarint(4);
    return short >= 0 ? short : Number(this.varint64() & 0xffffffffn);
  }

  /** An int64 field as a number (two's complement of the 64 bits; exact below 2^53 in magnitude). */
  int64(): number {
    // Up to seven bytes (below 2^49) the value is non-negative and exact; longer ones through BigInt.
    const short = this.shortVarint(7);
    return short >= 0 ? short : Number(BigInt.asIntN(64, this.varint64()));
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

// Each message below is read by its own loop over its fields (no callback per field: one call
// site calling many closures is megamorphic, and V8 then inlines none of them). A nested
// message narrows the reader's end to its own while it is read (enter/leave), so every read
// past it is a truncation.

/** The next field's tag (field number * 8 + wire type); field number 0 is no field. */
function nextTag(r: Reader): number {
  const tag = r.varint();
  if (tag < 8) throw new WireError('field number 0');
  // Field numbers end at 2^29 - 1: a longer tag is no field (and beyond 2^53 its wire type
  // bits would not even be exact).
  if (tag >= 2 ** 32) throw new WireError('tag beyond 32 bits');
  return tag;
}

const fieldNumber = (tag: number): number => Math.floor(tag / 8);

/** Narrows the reader to the length-delimited field at its position; returns the outer end for leave(). */
function enter(r: Reader): number {
  const end = r.enter();
  const outer = r.end;
  r.end = end;
  return outer;
}

function leave(r: Reader, outer: number): void {
  r.end = outer;
}

function expect(wire: number, want: number, what: string): void {
  if (wire !== want) throw new WireError(`${what} has wire type ${wire}`);
}

/**
 * What the context extensions map is made from: an empty, frozen object with no prototype.
 * Nothing of Object.prototype is behind it, so `__proto__` or `toString` is a key like any other
 * (never a prototype assignment that silently drops an entry); and unlike Object.create(null),
 * which gives a hash table whose Object.keys sorts the names on every call (~1 us a Check under
 * load), V8 keeps such an object in fast mode. The compiled evaluator's records are made the
 * same way (policy/compiled/values.ts newRecord).
 */
const MAP_PROTOTYPE: object = Object.freeze(Object.create(null) as object);
const newMap = (): Record<string, string> => Object.create(MAP_PROTOTYPE) as Record<string, string>;

// The last map entry read (readMapEntry): its key and value.
let entryKey = '';
let entryValue = '';

/** One map<string, string> entry, into entryKey and entryValue. */
function readMapEntry(r: Reader, valueSlot: StringSlot | null): void {
  const outer = enter(r);
  let key = '';
  let value = '';
  // The value's slot: `valueSlot`, or (headers, null) the slot of its name when the name came
  // first and is a known one.
  let slot = valueSlot;
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    if (n === 1 || n === 2) {
      expect(wire, LEN, 'a map entry');
      if (n === 1) {
        key = r.knownString(HEADER_NAMES);
        if (valueSlot === null) slot = r.knownSlot;
      } else {
        value = slot === null ? r.string() : r.slotString(slot);
      }
    } else {
      r.skip(wire);
    }
  }
  leave(r, outer);
  entryKey = key;
  entryValue = value;
}

// A key sent twice keeps its first position and its last value, as protobuf's maps do (and as
// Map.set does).

/** One context extension into `into`. */
function mapEntry(r: Reader, into: Record<string, string>, valueSlot: StringSlot): void {
  readMapEntry(r, valueSlot);
  into[entryKey] = entryValue;
}

/**
 * One request header into `into`. The headers are a Map, which decode.ts takes as the request's
 * header map as it is when every name is already in its form (decodeHeaders): no object grown
 * key by key and then copied into a Map, on every Check.
 */
function headerEntry(r: Reader, into: Map<string, string>): void {
  readMapEntry(r, null);
  into.set(entryKey, entryValue);
}

/** Slots of the fields read as strings, by where they are (StringSlot). */
const SLOTS = {
  sourceAddress: new StringSlot(),
  sourcePrincipal: new StringSlot(),
  destinationAddress: new StringSlot(),
  destinationPrincipal: new StringSlot(),
  method: new StringSlot(),
  host: new StringSlot(),
  scheme: new StringSlot(),
  extension: new StringSlot(),
};

/** The fields (besides header values: remembersValuesOf) whose values are remembered between CheckRequests. */
export function rememberedFields(): readonly string[] {
  return Object.keys(SLOTS);
}

function socketAddress(r: Reader, addressSlot: StringSlot): { address?: string; portValue?: number } {
  const outer = enter(r);
  const socket: { address?: string; portValue?: number } = {};
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    if (n === 2) {
      expect(wire, LEN, 'SocketAddress.address');
      socket.address = r.slotString(addressSlot);
    } else if (n === 3) {
      expect(wire, VARINT, 'SocketAddress.port_value');
      socket.portValue = r.uint32();
    } else {
      r.skip(wire);
    }
  }
  leave(r, outer);
  return socket;
}

function peer(r: Reader, addressSlot: StringSlot, principalSlot: StringSlot): PeerMessage {
  const outer = enter(r);
  const out: PeerMessage = {};
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    if (n === 1) {
      expect(wire, LEN, 'Peer.address');
      const addressOuter = enter(r);
      while (r.pos < r.end) {
        const atag = nextTag(r);
        const awire = atag & 7;
        if (fieldNumber(atag) === 1) {
          expect(awire, LEN, 'Address.socket_address');
          out.address = { socketAddress: socketAddress(r, addressSlot) };
        } else {
          r.skip(awire);
        }
      }
      leave(r, addressOuter);
    } else if (n === 4 || n === 5) {
      expect(wire, LEN, 'Peer.principal/certificate');
      if (n === 4) out.principal = r.slotString(principalSlot);
      else out.certificate = r.string();
    } else {
      r.skip(wire);
    }
  }
  leave(r, outer);
  return out;
}

function headerValue(r: Reader): HeaderValueMessage {
  const outer = enter(r);
  const h: HeaderValueMessage = {};
  let slot: StringSlot | null = null;
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    if (n >= 1 && n <= 3) {
      expect(wire, LEN, 'HeaderValue');
      if (n === 1) {
        h.key = r.knownString(HEADER_NAMES);
        slot = r.knownSlot;
      } else if (n === 2) h.value = slot === null ? r.string() : r.slotString(slot);
      else h.rawValue = r.bytes();
    } else {
      r.skip(wire);
    }
  }
  leave(r, outer);
  return h;
}

function http(r: Reader): HttpRequestMessage {
  const outer = enter(r);
  const out: HttpRequestMessage = {};
  let headerFields: Map<string, string> | undefined;
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    switch (n) {
      case 3:
        expect(wire, LEN, 'HttpRequest.headers');
        headerEntry(r, (headerFields ??= new Map()));
        break;
      // One case per field: a property store each, not one keyed by the field's name.
      case 2:
        expect(wire, LEN, 'HttpRequest.method');
        out.method = r.slotString(SLOTS.method);
        break;
      case 4:
        expect(wire, LEN, 'HttpRequest.path');
        // The path (its query can carry credentials) and the body are never remembered.
        out.path = r.string();
        break;
      case 5:
        expect(wire, LEN, 'HttpRequest.host');
        out.host = r.slotString(SLOTS.host);
        break;
      case 6:
        expect(wire, LEN, 'HttpRequest.scheme');
        out.scheme = r.slotString(SLOTS.scheme);
        break;
      case 11:
        expect(wire, LEN, 'HttpRequest.body');
        out.body = r.string();
        break;
      case 12:
        expect(wire, LEN, 'HttpRequest.raw_body');
        out.rawBody = r.bytes();
        break;
      case 13: {
        expect(wire, LEN, 'HttpRequest.header_map');
        // A message field sent twice is merged (protobuf's rule): the header lists add up.
        const headers: HeaderValueMessage[] = out.headerMap?.headers ?? [];
        const mapOuter = enter(r);
        while (r.pos < r.end) {
          const htag = nextTag(r);
          const hwire = htag & 7;
          if (fieldNumber(htag) === 1) {
            expect(hwire, LEN, 'HeaderMap.headers');
            headers.push(headerValue(r));
          } else {
            r.skip(hwire);
          }
        }
        leave(r, mapOuter);
        out.headerMap = { headers };
        break;
      }
      default:
        r.skip(wire);
    }
  }
  leave(r, outer);
  if (headerFields !== undefined) out.headers = headerFields;
  return out;
}

type RequestMessage = NonNullable<NonNullable<CheckRequestMessage['attributes']>['request']>;

function attributeRequest(r: Reader): RequestMessage {
  const outer = enter(r);
  const request: RequestMessage = {};
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const n = fieldNumber(tag);
    const wire = tag & 7;
    if (n === 1) {
      expect(wire, LEN, 'Request.time');
      const timeOuter = enter(r);
      const time: { seconds?: number } = {};
      while (r.pos < r.end) {
        const ttag = nextTag(r);
        const twire = ttag & 7;
        if (fieldNumber(ttag) === 1) {
          expect(twire, VARINT, 'Timestamp.seconds');
          time.seconds = r.int64();
        } else {
          r.skip(twire);
        }
      }
      leave(r, timeOuter);
      request.time = time;
    } else if (n === 2) {
      expect(wire, LEN, 'Request.http');
      request.http = http(r);
    } else {
      r.skip(wire);
    }
  }
  leave(r, outer);
  return request;
}

/** CheckRequest bytes -> the object decode.ts reads (the shape @grpc/proto-loader gives). */
export function decodeCheckRequestWire(buf: Buffer): CheckRequestMessage {
  const r = new Reader(buf, 0, buf.length);
  const message: CheckRequestMessage = {};
  while (r.pos < r.end) {
    const tag = nextTag(r);
    const wire = tag & 7;
    if (fieldNumber(tag) !== 1) {
      r.skip(wire);
      continue;
    }
    expect(wire, LEN, 'CheckRequest.attributes');
    const outer = enter(r);
    const attributes: NonNullable<CheckRequestMessage['attributes']> = {};
    while (r.pos < r.end) {
      const atag = nextTag(r);
      const an = fieldNumber(atag);
      const awire = atag & 7;
      switch (an) {
        case 1:
        case 2:
          expect(awire, LEN, 'AttributeContext.source/destination');
          if (an === 1) attributes.source = peer(r, SLOTS.sourceAddress, SLOTS.sourcePrincipal);
          else attributes.destination = peer(r, SLOTS.destinationAddress, SLOTS.destinationPrincipal);
          break;
        case 4:
          expect(awire, LEN, 'AttributeContext.request');
          attributes.request = attributeRequest(r);
          break;
        case 10:
          expect(awire, LEN, 'AttributeContext.context_extensions');
          mapEntry(r, (attributes.contextExtensions ??= newMap()), SLOTS.extension);
          break;
        default:
          r.skip(awire);
      }
    }
    leave(r, outer);
    message.attributes = attributes;
  }
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
const varintField = (v: number): number => (v === 0 ? 0 : 1 + varintSize(v));

/**
 * A string's UTF-8 byte count. Most strings here are short and ASCII (header names, ids, SPIFFE
 * IDs): counted in JS, without a call into C++; others by Buffer.byteLength.
 */
function utf8Length(s: string): number {
  const n = s.length;
  if (n > 64) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return n;
}

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
  /** A string field whose UTF-8 byte count is `size` (utf8Length). */
  str(n: number, s: string, size: number): void {
    this.len(n, size);
    if (size === s.length && size <= 16) {
      // Short ASCII: byte by byte, cheaper than a call into C++.
      for (let i = 0; i < size; i++) this.buf[this.pos + i] = s.charCodeAt(i);
      this.pos += size;
    } else if (size === s.length) {
      // ASCII (one byte a character, utf8Length said so): Latin-1 writes the same bytes and
      // skips UTF-8's encoder (~130 ns a string against ~250).
      this.pos += latin1Write.call(this.buf, s, this.pos, size);
    } else {
      this.pos += this.buf.write(s, this.pos, size, 'utf8');
    }
  }
  uint(n: number, v: number): void {
    if (v === 0) return;
    this.buf[this.pos++] = n * 8 + VARINT;
    this.varint(v);
  }
}

/** A HeaderValueOption's sizes, each string's counted once for both passes. */
interface HeaderSizes {
  readonly key: number;
  readonly value: number;
  /** The HeaderValue message. */
  readonly inner: number;
  /** The HeaderValueOption message. */
  readonly option: number;
}

function headerSizes(h: HeaderOption): HeaderSizes {
  const key = h.header.key === '' ? 0 : utf8Length(h.header.key);
  const value = h.header.value === '' ? 0 : utf8Length(h.header.value);
  const inner = (key === 0 ? 0 : field(key)) + (value === 0 ? 0 : field(value));
  return { key, value, inner, option: field(inner) + varintField(h.appendAction) };
}

function writeHeaderOption(o: Out, n: number, h: HeaderOption, size: HeaderSizes): void {
  o.len(n, size.option);
  o.len(1, size.inner);
  if (size.key !== 0) o.str(1, h.header.key, size.key);
  if (size.value !== 0) o.str(2, h.header.value, size.value);
  o.uint(3, h.appendAction);
}

/** A metadata entry's sizes: its key, its Value message, the entry. */
interface EntrySizes {
  readonly key: number;
  /** The string's byte count, or each list item's. */
  readonly strings: readonly number[];
  /** The ListValue message, when the value is a list. */
  readonly list: number;
  readonly value: number;
  readonly entry: number;
}

function entrySizes(key: string, v: StructValue): EntrySizes {
  const keyLength = utf8Length(key);
  let strings: number[];
  let list = 0;
  let value: number;
  if ('stringValue' in v) {
    strings = [utf8Length(v.stringValue)];
    value = field(strings[0] as number);
  } else {
    strings = v.listValue.values.map((item) => utf8Length(item.stringValue));
    for (const size of strings) list += field(field(size));
    value = field(list);
  }
  return { key: keyLength, strings, list, value, entry: field(keyLength) + field(value) };
}

function writeValue(o: Out, v: StructValue, size: EntrySizes): void {
  if ('stringValue' in v) {
    o.str(3, v.stringValue, size.strings[0] as number);
    return;
  }
  o.len(6, size.list);
  const items = v.listValue.values;
  for (let i = 0; i < items.length; i++) {
    const itemSize = size.strings[i] as number;
    o.len(1, field(itemSize));
    o.str(3, (items[i] as { stringValue: string }).stringValue, itemSize);
  }
}

/** The CheckResponse object respond.ts builds -> bytes. */
export function encodeCheckResponseWire(response: WireResponse): Buffer {
  return encodeCheckResponse(response, 0);
}

/** gRPC's message prefix: a compressed flag and the message's length (PROTOCOL-HTTP2.md). */
export const GRPC_PREFIX_BYTES = 5;

/** The same bytes behind gRPC's 5-byte message prefix (not compressed), as they are sent. */
export function encodeCheckResponseFrame(response: WireResponse): Buffer {
  return encodeCheckResponse(response, GRPC_PREFIX_BYTES);
}

function encodeCheckResponse(response: WireResponse, offset: number): Buffer {
  // status.code is written even when 0 (OK), as protobufjs writes a field that was set: a client
  // that reads `status.code` without proto3's default still sees the OK.
  const statusMessage = response.status.message === undefined || response.status.message === '' ? 0 : utf8Length(response.status.message);
  const status = 1 + varintSize(response.status.code) + (statusMessage === 0 ? 0 : field(statusMessage));
  let denied = -1;
  let deniedStatus = 0;
  let deniedBody = 0;
  let deniedHeaders: HeaderSizes[] = [];
  const d = response.deniedResponse;
  if (d !== undefined) {
    deniedStatus = varintField(d.status.code);
    deniedBody = d.body === '' ? 0 : utf8Length(d.body);
    denied = field(deniedStatus) + (deniedBody === 0 ? 0 : field(deniedBody));
    deniedHeaders = d.headers.map(headerSizes);
    for (const h of deniedHeaders) denied += field(h.option);
  }
  let ok = -1;
  let okHeaders: HeaderSizes[] = [];
  let removed: number[] = [];
  const okr = response.okResponse;
  if (okr !== undefined) {
    ok = 0;
    okHeaders = okr.headers.map(headerSizes);
    for (const h of okHeaders) ok += field(h.option);
    removed = (okr.headersToRemove ?? []).map(utf8Length);
    for (const size of removed) ok += field(size);
  }
  let metadata = -1;
  const entries = response.dynamicMetadata === undefined ? null : Object.entries(response.dynamicMetadata.fields);
  let entrySize: EntrySizes[] = [];
  if (entries !== null) {
    metadata = 0;
    entrySize = entries.map(([key, value]) => entrySizes(key, value));
    for (const e of entrySize) metadata += field(e.entry);
  }
  const total = field(status) + (denied < 0 ? 0 : field(denied)) + (ok < 0 ? 0 : field(ok)) + (metadata < 0 ? 0 : field(metadata));
  const o = new Out(Buffer.allocUnsafe(offset + total));
  if (offset !== 0) {
    o.buf[0] = 0;
    o.buf.writeUInt32BE(total, 1);
    o.pos = offset;
  }
  o.len(1, status);
  o.buf[o.pos++] = 1 * 8 + VARINT;
  o.varint(response.status.code);
  if (statusMessage !== 0) o.str(2, response.status.message as string, statusMessage);
  if (d !== undefined) {
    o.len(2, denied);
    o.len(1, deniedStatus);
    o.uint(1, d.status.code);
    for (let i = 0; i < d.headers.length; i++) writeHeaderOption(o, 2, d.headers[i] as HeaderOption, deniedHeaders[i] as HeaderSizes);
    if (deniedBody !== 0) o.str(3, d.body, deniedBody);
  }
  if (okr !== undefined) {
    o.len(3, ok);
    for (let i = 0; i < okr.headers.length; i++) writeHeaderOption(o, 2, okr.headers[i] as HeaderOption, okHeaders[i] as HeaderSizes);
    const names = okr.headersToRemove ?? [];
    for (let i = 0; i < names.length; i++) o.str(5, names[i] as string, removed[i] as number);
  }
  if (entries !== null) {
    o.len(4, metadata);
    for (let i = 0; i < entries.length; i++) {
      const [key, value] = entries[i] as [string, StructValue];
      const size = entrySize[i] as EntrySizes;
      o.len(1, size.entry);
      o.str(1, key, size.key);
      o.len(2, size.value);
      writeValue(o, value, size);
    }
  }
  if (o.pos !== offset + total) throw new Error(`CheckResponse size ${o.pos - offset} != ${total}`);
  return o.buf;
}
