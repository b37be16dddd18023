// HPACK (RFC 7541) for the server side of Mandate's HTTP/2 (http2.ts): a decoder for the header
// blocks clients send (static and dynamic table, integers, Huffman strings), and literal fields
// for the header blocks we send. Our blocks never add to the client's dynamic table (literal
// without indexing, RFC 7541 §6.2.2), so encoding keeps no state.
//
// A decoding error is a connection error (COMPRESSION_ERROR, RFC 9113 §4.3): once one block
// fails, the table no longer matches the client's and no later block can be read.

export class HpackError extends Error {}

/** The static table (RFC 7541 Appendix A), index 1 first. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'], [':scheme', 'http'],
  [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'],
  [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'], ['accept-language', ''],
  ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''],
  ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/**
 * Bit lengths of the Huffman code (RFC 7541 Appendix B) for symbols 0..255, then EOS (256). The
 * code is canonical: codes of one length are consecutive in symbol order, and every code of a
 * length comes after the codes of shorter lengths extended by zeros; so the lengths alone give
 * every code (test/server/hpack.test.ts checks codes the RFC lists, and its Appendix C examples).
 */
const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
/** Huffman strings up to this long are remembered (HpackDecoder.lastCoded). */
const LAST_CODED_BYTES = 64;
const MAX_CODE_BITS = 30;

/** Per length L: the first code of that length, how many there are, and where their symbols start in HUFFMAN_SYMBOLS. */
const HUFFMAN_FIRST = new Int32Array(MAX_CODE_BITS + 1);
const HUFFMAN_COUNT = new Int32Array(MAX_CODE_BITS + 1);
const HUFFMAN_OFFSET = new Int32Array(MAX_CODE_BITS + 1);
/** Symbols by (length, symbol). */
const HUFFMAN_SYMBOLS = new Uint16Array(EOS + 1);
{
  for (const len of HUFFMAN_LENGTHS) (HUFFMAN_COUNT[len] as number)++;
  let code = 0;
  let offset = 0;
  for (let len = 1; len <= MAX_CODE_BITS; len++) {
    HUFFMAN_FIRST[len] = code;
    HUFFMAN_OFFSET[len] = offset;
    code = (code + (HUFFMAN_COUNT[len] as number)) * 2;
    offset += HUFFMAN_COUNT[len] as number;
  }
  const next = Int32Array.from(HUFFMAN_OFFSET);
  for (let s = 0; s <= EOS; s++) {
    const len = HUFFMAN_LENGTHS[s] as number;
    HUFFMAN_SYMBOLS[(next[len] as number)++] = s;
  }
}

/** The code of each symbol, for tests and for anyone who encodes (we never Huffman-encode). */
export function huffmanCode(symbol: number): { code: number; bits: number } {
  const bits = HUFFMAN_LENGTHS[symbol] as number;
  let rank = 0;
  for (let s = 0; s < symbol; s++) if (HUFFMAN_LENGTHS[s] === bits) rank++;
  return { code: (HUFFMAN_FIRST[bits] as number) + rank, bits };
}

/**
 * Decodes the Huffman string buf[start, end) into out from 0; the number of bytes written.
 * Errors (RFC 7541 §5.2): EOS inside the string, padding longer than 7 bits, or padding that
 * is not the most significant bits of EOS (all ones).
 */
function huffmanDecode(buf: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let n = 0;
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i] as number;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const k = code - (HUFFMAN_FIRST[len] as number);
      if (k >= 0 && k < (HUFFMAN_COUNT[len] as number)) {
        const symbol = HUFFMAN_SYMBOLS[(HUFFMAN_OFFSET[len] as number) + k] as number;
        if (symbol === EOS) throw new HpackError('EOS in a Huffman string');
        out[n++] = symbol;
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_BITS) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('invalid Huffman padding');
  return n;
}

type Latin1Slice = (this: Buffer, start: number, end: number) => string;
/** Buffer's own Latin-1 slice (what toString('latin1', start, end) calls after checking its arguments). */
const latin1Slice: Latin1Slice =
  (Buffer.prototype as unknown as { latin1Slice?: Latin1Slice }).latin1Slice ??
  function (this: Buffer, start: number, end: number): string {
    return this.toString('latin1', start, end);
  };
const latin1 = (buf: Buffer, start: number, end: number): string => latin1Slice.call(buf, start, end);

/** Bytes an entry takes in the dynamic table (RFC 7541 §4.1): its name's and value's octets, plus 32. */
const ENTRY_OVERHEAD = 32;

/** Where a decoded header field goes, in the order of the block. */
export type FieldSink = (name: string, value: string) => void;

export class HpackDecoder {
  // The dynamic table as a ring, newest at `head`: at most maxTableSize / 32 entries.
  private readonly names: string[];
  private readonly values: string[];
  private readonly sizes: Int32Array;
  private head = 0;
  private count = 0;
  private tableSize = 0;
  /** The size the encoder last set (a dynamic table size update), at most `limit`. */
  private maxTableSize: number;
  private pos = 0;
  private scratch = Buffer.allocUnsafe(256);
  // The last short Huffman string and its text: clients send some literals on every request
  // without indexing them (h2load, with nghttp2's encoder, sent every call's :path that way:
  // decoding strings was 1.2% of the main thread under load), and comparing a string's bytes
  // is one step per byte where decoding is eight. Per connection: only a client's own earlier
  // string is compared with.
  private readonly lastCoded = new Uint8Array(LAST_CODED_BYTES);
  private lastCodedLength = -1;
  private lastText = '';

  constructor(
    /** SETTINGS_HEADER_TABLE_SIZE as we advertise it: the most an update may set. */
    private readonly limit: number,
  ) {
    this.maxTableSize = limit;
    const capacity = Math.max(1, Math.floor(limit / ENTRY_OVERHEAD));
    this.names = new Array<string>(capacity).fill('');
    this.values = new Array<string>(capacity).fill('');
    this.sizes = new Int32Array(capacity);
  }

  /**
   * Decodes the header block block[start, end), handing each field to `sink` in order. Stops
   * with HpackError as soon as the fields decoded exceed `maxListBytes` (names, values and 32
   * per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts them): a block a few bytes long can
   * repeat a 4 KB table entry thousands of times.
   */
  decode(block: Buffer, start: number, end: number, maxListBytes: number, sink: FieldSink): void {
    this.pos = start;
    let listBytes = 0;
    let fields = 0;
    while (this.pos < end) {
      const b = block[this.pos] as number;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed header field (§6.1).
        const index = this.integer(block, end, 7);
        if (index === 0) throw new HpackError('index 0');
        name = this.nameAt(index);
        value = this.valueAt(index);
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only before the first field of a block (§4.2).
        if (fields > 0) throw new HpackError('dynamic table size update after a field');
        const size = this.integer(block, end, 5);
        if (size > this.limit) throw new HpackError(`dynamic table size ${size} over the advertised ${this.limit}`);
        this.maxTableSize = size;
        this.evictTo(size);
        continue;
      } else {
        // Literal header field: with incremental indexing (01, 6-bit index), without indexing
        // (0000, 4-bit) or never indexed (0001, 4-bit) (§6.2).
        const indexing = (b & 0xc0) === 0x40;
        const index = this.integer(block, end, indexing ? 6 : 4);
        name = index === 0 ? this.string(block, end) : this.nameAt(index);
        value = this.string(block, end);
        if (indexing) this.add(name, value);
      }
      fields++;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes > maxListBytes) throw new HpackError(`header list over ${maxListBytes} bytes`);
      sink(name, value);
    }
  }

  /** An integer with an N-bit prefix (§5.1), at most 2^31 - 1. */
  private integer(block: Uint8Array, end: number, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = (block[this.pos++] as number) & max;
    if (value < max) return value;
    let mul = 1;
    for (;;) {
      if (this.pos >= end) throw new HpackError('truncated integer');
      const b = block[this.pos++] as number;
      value += (b & 0x7f) * mul;
      if (value > 0x7fffffff) throw new HpackError('integer too large');
      if ((b & 0x80) === 0) return value;
      mul *= 128;
    }
  }

  /** A string literal (§5.2), as Latin-1 text (one character per octet, as Node gives header values). */
  private string(block: Buffer, end: number): string {
    if (this.pos >= end) throw new HpackError('truncated string');
    const huffman = ((block[this.pos] as number) & 0x80) !== 0;
    const length = this.integer(block, end, 7);
    const start = this.pos;
    if (length > end - start) throw new HpackError('truncated string');
    this.pos = start + length;
    if (length === 0) return '';
    if (!huffman) return latin1(block, start, start + length);
    const remembered = length <= LAST_CODED_BYTES;
    if (remembered && length === this.lastCodedLength) {
      const last = this.lastCoded;
      let i = 0;
      while (i < length && last[i] === block[start + i]) i++;
      if (i === length) return this.lastText;
    }
    // At most 8/5 octets out per octet in: the shortest code is 5 bits.
    const most = Math.ceil((length * 8) / 5);
    if (this.scratch.length < most) this.scratch = Buffer.allocUnsafe(Math.max(most, this.scratch.length * 2));
    const n = huffmanDecode(block, start, start + length, this.scratch);
    const text = latin1(this.scratch, 0, n);
    if (remembered) {
      this.lastCoded.set(block.subarray(start, start + length));
      this.lastCodedLength = length;
      this.lastText = text;
    }
    return text;
  }

  private nameAt(index: number): string {
    if (index <= STATIC_TABLE.length) return (STATIC_TABLE[index - 1] as readonly [string, string])[0];
    return this.names[this.slot(index)] as string;
  }

  private valueAt(index: number): string {
    if (index <= STATIC_TABLE.length) return (STATIC_TABLE[index - 1] as readonly [string, string])[1];
    return this.values[this.slot(index)] as string;
  }

  /** The ring slot of dynamic index `index` (62 is the newest entry). */
  private slot(index: number): number {
    const k = index - STATIC_TABLE.length - 1;
    if (k >= this.count) throw new HpackError(`index ${index} beyond the table`);
    return (this.head - k + this.names.length) % this.names.length;
  }

  /** Adds an entry (§4.4): evicts from the oldest first; an entry larger than the table empties it. */
  private add(name: string, value: string): void {
    // Names and values are Latin-1 text here: one octet per character.
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxTableSize) {
      this.evictTo(0);
      return;
    }
    this.evictTo(this.maxTableSize - size);
    this.head = (this.head + 1) % this.names.length;
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.sizes[this.head] = size;
    this.count++;
    this.tableSize += size;
  }

  private evictTo(size: number): void {
    while (this.tableSize > size) {
      const oldest = (this.head - this.count + 1 + this.names.length) % this.names.length;
      this.tableSize -= this.sizes[oldest] as number;
      this.names[oldest] = '';
      this.values[oldest] = '';
      this.count--;
    }
  }
}

/** An integer with an N-bit prefix (§5.1) whose first byte carries `pattern`. */
function encodeInteger(out: number[], value: number, prefixBits: number, pattern: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(pattern | value);
    return;
  }
  out.push(pattern | max);
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

/**
 * A header block of literal fields without indexing (§6.2.2), names and values as Latin-1
 * octets, never Huffman-coded; `:status 200` as its static index. Callers give lower-case names
 * and values without CR, LF or NUL.
 */
export function encodeHeaderBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ':status' && value === '200') {
      out.push(0x88);
      continue;
    }
    out.push(0x00);
    encodeInteger(out, name.length, 7, 0);
    for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i) & 0xff);
    encodeInteger(out, value.length, 7, 0);
    for (let i = 0; i < value.length; i++) out.push(value.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}
