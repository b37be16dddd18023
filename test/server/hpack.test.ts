// HPACK (src/server/hpack.ts) against RFC 7541's own examples (Appendix C: the same requests
// with and without Huffman coding, one decoder across them, so the dynamic table carries over)
// and its codes (Appendix B), then every way a block can be wrong: each is an HpackError, which
// the connection turns into COMPRESSION_ERROR.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeHeaderBlock, HpackDecoder, HpackError, huffmanCode } from '../../src/server/hpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(decoder: HpackDecoder, block: Buffer, maxListBytes = 1 << 20): [string, string][] {
  const fields: [string, string][] = [];
  decoder.decode(block, 0, block.length, maxListBytes, (name, value) => fields.push([name, value]));
  return fields;
}

const REQUESTS: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];

describe('HPACK decoder', () => {
  // C.3 and C.4: the same three requests, without and with Huffman coding, one decoder across
  // each three (the second and third name entries the first added).
  const EXAMPLES: [string, string[]][] = [
    ['C.3, without Huffman coding', ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65']],
    ['C.4, Huffman-coded', ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf']],
  ];
  for (const [name, blocks] of EXAMPLES) {
    it(`decodes RFC 7541 ${name}: three requests sharing one table`, () => {
      const d = new HpackDecoder(4096);
      for (const [i, b] of blocks.entries()) assert.deepEqual(decodeAll(d, hex(b)), REQUESTS[i], `${name}, request ${i + 1}`);
    });
  }

  it('evicts the oldest entries when the table is full, as RFC 7541 C.5 does with a 256-byte table', () => {
    // C.5.1 then C.5.2 (responses): the second block's :status 307 evicts `:status 302`, and
    // index 63 then names what was 64 before it.
    const d = new HpackDecoder(4096);
    const update = hex('3fe1 01'); // dynamic table size update to 256 (§6.3)
    const first = Buffer.concat([update, hex('4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d')]);
    assert.deepEqual(decodeAll(d, first), [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']]);
    assert.deepEqual(decodeAll(d, hex('4803 3330 37c1 c0bf')), [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']]);
    // Four entries fit in 256 bytes only while they are these: 64 (the evicted :status 302) is gone.
    assert.throws(() => decodeAll(d, hex('c2')), HpackError);
  });

  it('derives the Huffman codes RFC 7541 Appendix B lists', () => {
    const listed: [number, number, number][] = [
      [0, 0x1ff8, 13], [9, 0xffffea, 24], [10, 0x3ffffffc, 30], [32, 0x14, 6], [48, 0x0, 5], [97, 0x3, 5], [101, 0x5, 5],
      [126, 0x1ffd, 13], [127, 0xffffffc, 28], [128, 0xfffe6, 20], [200, 0x3ffffe2, 26], [255, 0x3ffffee, 26], [256, 0x3fffffff, 30],
    ];
    for (const [symbol, code, bits] of listed) assert.deepEqual(huffmanCode(symbol), { code, bits }, `symbol ${symbol}`);
  });

  it('decodes every byte value Huffman-coded, each code as the table gives it', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const [[name, value]] = decodeAll(new HpackDecoder(4096), huffmanLiteral('x', all)) as [[string, string]];
    assert.equal(name, 'x');
    assert.deepEqual([...Buffer.from(value, 'latin1')], [...all]);
  });

  it('decodes Huffman strings of one coded length one after the other, each as itself (the remembered last string is compared byte for byte)', () => {
    const d = new HpackDecoder(4096);
    const paths = ['/a.B/Check', '/a.B/Chuck', '/a.B/Check', '/a.B/Check0', '/a.B/Check'];
    assert.equal(huffmanLiteral(':path', Buffer.from(paths[0] as string)).length, huffmanLiteral(':path', Buffer.from(paths[1] as string)).length);
    for (const path of paths) assert.deepEqual(decodeAll(d, huffmanLiteral(':path', Buffer.from(path))), [[':path', path]]);
  });

  // Each malformed block, decoded by a fresh decoder: an HpackError, never a field.
  const MALFORMED: [string, string][] = [
    ['index 0', '80'],
    ['an index past the static table with an empty dynamic table', 'be'],
    ['a literal whose name index is past the tables', '7f 0a 01 61'],
    ['a string longer than the block', '00 05 61 62 01 61'],
    ['an integer that ends with the block', '7f'],
    ['an integer past 2^31 - 1', '7f ff ff ff ff 0f'],
    ['Huffman padding longer than 7 bits', '00 01 78 82 1f ff'],
    ['Huffman padding not all ones', '00 01 78 81 18'],
    ['EOS inside a Huffman string', '00 01 78 84 ff ff ff ff'],
    ['a table size update over the advertised size', '3f e2 1f'],
    ['a table size update after a field', '82 20'],
  ];
  for (const [name, block] of MALFORMED) {
    it(`refuses ${name}`, () => {
      const fields: string[] = [];
      assert.throws(() => new HpackDecoder(4096).decode(hex(block), 0, hex(block).length, 1 << 20, (n) => fields.push(n)), HpackError);
      assert.deepEqual(fields.filter((n) => n === 'x'), []);
    });
  }

  it('stops a block whose fields pass the header list limit, however few bytes it takes (one entry referenced again and again)', () => {
    const entry = Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 0x7f, 0xb9, 0x16]), Buffer.alloc(3000, 0x61)]);
    const d = new HpackDecoder(4096);
    let seen = 0;
    assert.throws(() => d.decode(Buffer.concat([entry, Buffer.alloc(1000, 0xbe)]), 0, 4006, 65_536, () => seen++), /header list over 65536 bytes/);
    assert.ok(seen <= 22, `${seen} fields handed out before the limit`);
  });

  it('empties the table for an entry larger than it, and keeps decoding (§4.4)', () => {
    const d = new HpackDecoder(64);
    // 'y: b' fits (1 + 1 + 32 = 34 bytes); 'x' with a 40-byte value does not (73 > 64): the
    // table is emptied and nothing is added, so index 62 then names nothing.
    assert.deepEqual(decodeAll(d, Buffer.from([0x40, 0x01, 0x79, 0x01, 0x62, 0xbe])), [['y', 'b'], ['y', 'b']]);
    const block = Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 40]), Buffer.alloc(40, 0x61)]);
    assert.deepEqual(decodeAll(d, block), [['x', 'a'.repeat(40)]]);
    assert.throws(() => decodeAll(d, Buffer.from([0xbe])), HpackError);
  });
});

describe('HPACK encoder (our header blocks)', () => {
  it('writes literal fields without indexing that decode back, :status 200 as its static index, long lengths as multi-byte integers', () => {
    const fields: [string, string][] = [[':status', '200'], ['content-type', 'application/grpc+proto'], ['grpc-message', 'm'.repeat(300)]];
    const block = encodeHeaderBlock(fields);
    assert.equal(block[0], 0x88);
    assert.equal(block[1], 0x00);
    const d = new HpackDecoder(4096);
    assert.deepEqual(decodeAll(d, block), fields);
    // Nothing entered the table: an index past the static table is still an error.
    assert.throws(() => decodeAll(d, Buffer.from([0xbe])), HpackError);
  });
});

/** A literal field without indexing, its name raw and its value Huffman-coded from huffmanCode, padded with ones. */
function huffmanLiteral(name: string, value: Buffer): Buffer {
  let bits = '';
  for (const byte of value) {
    const { code, bits: n } = huffmanCode(byte);
    bits += code.toString(2).padStart(n, '0');
  }
  bits += '1'.repeat((8 - (bits.length % 8)) % 8);
  const coded = Buffer.from(bits.match(/.{8}/g)?.map((b) => Number.parseInt(b, 2)) ?? []);
  const length = coded.length < 127 ? [coded.length] : [0x7f, ...sevenBit(coded.length - 127)];
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, 'latin1'), Buffer.from([0x80 | (length[0] as number), ...length.slice(1)]), coded]);
}

function sevenBit(n: number): number[] {
  const out: number[] = [];
  let rest = n;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}
