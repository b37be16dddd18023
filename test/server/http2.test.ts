// Mandate's HTTP/2 (src/server/http2.ts) on a real port, driven two ways: by nghttp2 (node:http2's
// client and grpc-js over it, an implementation we did not write) for what clients send, and by
// raw frames for what no client library sends. Each protocol error ends as RFC 9113 says (GOAWAY
// with its code, or RST_STREAM on the one stream) and the server keeps serving.

import assert from 'node:assert/strict';
import { connect as connectH2, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as connectTcp, createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { encodeHeaderBlock, HpackDecoder } from '../../src/server/hpack.js';
import { GrpcServer, type MethodDefinition, type ServerCall, type UnaryCallback } from '../../src/server/grpc-server.js';
import { H2_ERROR, H2Connection, type RequestHeaders } from '../../src/server/http2.js';
import { unaryBytes } from '../helpers/raw-client.js';

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const identity = (b: Buffer): Buffer => b;
const method = (path: string): MethodDefinition => ({ path, requestStream: false, responseStream: false, requestDeserialize: identity, responseSerialize: identity as (v: never) => Buffer });
const SERVICE = { Echo: method('/t.T/Echo'), Big: method('/t.T/Big'), Hold: method('/t.T/Hold') };
const BIG = 40_000;
const MAX_STREAMS = 4;

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function setting(id: number, value: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(id, 0);
  b.writeUInt32BE(value >>> 0, 2);
  return b;
}

function grpcMessage(body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

const requestFields = (path: string, extra: [string, string][] = []): [string, string][] => [
  [':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'mandate'], ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra,
];

/** A client that speaks frames: what it is sent it keeps, in order, for `next` to take. */
class RawClient {
  private readonly frames: Frame[] = [];
  private pending = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  closed = false;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 9) {
        const length = this.pending.readUIntBE(0, 3);
        if (this.pending.length < 9 + length) break;
        this.frames.push({ type: this.pending[3] as number, flags: this.pending[4] as number, stream: this.pending.readUInt32BE(5) & 0x7fffffff, payload: this.pending.subarray(9, 9 + length) });
        this.pending = this.pending.subarray(9 + length);
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  /** Connected; the preface and an empty SETTINGS sent unless told otherwise. */
  static async open(address: string, opening: Buffer | null = Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)])): Promise<RawClient> {
    const [host, port] = address.split(':') as [string, string];
    const socket = connectTcp(Number(port), host);
    await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
    const client = new RawClient(socket);
    if (opening !== null) socket.write(opening);
    return client;
  }

  send(...bytes: Buffer[]): void {
    this.socket.write(Buffer.concat(bytes));
  }

  /** The next frame `match` accepts (others are skipped); null when the connection closed first. */
  async next(match: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0] as Frame;
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error('no such frame in time');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
      this.wake = null;
    }
  }

  /** The GOAWAY's error code; the connection must close after it. */
  async goAway(): Promise<number> {
    const f = await this.next((x) => x.type === GOAWAY);
    assert.ok(f !== null, 'a GOAWAY before the connection closed');
    const code = f.payload.readUInt32BE(4);
    await this.next(() => false, 3000).catch(() => assert.fail('the connection stayed open after GOAWAY'));
    return code;
  }

  async reset(stream: number): Promise<number> {
    const f = await this.next((x) => x.type === RST_STREAM && x.stream === stream);
    assert.ok(f !== null, `RST_STREAM on stream ${stream}`);
    return f.payload.readUInt32BE(0);
  }

  /** A whole unary answer on `stream`: headers, the message bytes, trailers. */
  async answer(stream: number): Promise<{ headers: Map<string, string>; data: Buffer; trailers: Map<string, string> }> {
    const decode = (block: Buffer): Map<string, string> => {
      const m = new Map<string, string>();
      new HpackDecoder(4096).decode(block, 0, block.length, 1 << 20, (n, v) => m.set(n, v));
      return m;
    };
    const first = await this.next((x) => x.type === HEADERS && x.stream === stream);
    assert.ok(first !== null, `an answer on stream ${stream}`);
    const headers = decode(first.payload);
    if (first.flags & END_STREAM) return { headers, data: Buffer.alloc(0), trailers: new Map() };
    const chunks: Buffer[] = [];
    for (;;) {
      const f = await this.next((x) => (x.type === DATA || x.type === HEADERS) && x.stream === stream);
      assert.ok(f !== null, `the rest of the answer on stream ${stream}`);
      if (f.type === DATA) chunks.push(f.payload);
      else return { headers, data: Buffer.concat(chunks), trailers: decode(f.payload) };
    }
  }

  /** A unary call on `stream` in its simplest frames. */
  call(stream: number, path: string, body: Buffer): void {
    this.send(frame(HEADERS, END_HEADERS, stream, encodeHeaderBlock(requestFields(path))), frame(DATA, END_STREAM, stream, grpcMessage(body)));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A GrpcServer of a test's own (other limits or handlers) on a free port: `use` gets it, its address and the server side of each connection; closed after. */
async function withServer(
  limits: { maxMessageBytes: number; maxConcurrentStreams: number },
  handlers: Partial<Record<keyof typeof SERVICE, (call: never, callback: never) => unknown>>,
  use: (s: { server: GrpcServer; address: string; sockets: Socket[] }) => Promise<void>,
): Promise<void> {
  const server = new GrpcServer(limits);
  const served = Object.fromEntries(Object.keys(handlers).map((name) => [name, SERVICE[name as keyof typeof SERVICE]]));
  server.addService(served, handlers as Record<string, (call: never, callback: never) => unknown>);
  const sockets: Socket[] = [];
  const l = createServer((socket) => {
    sockets.push(socket);
    server.injectConnection(socket);
  });
  await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
  try {
    await use({ server, address: `127.0.0.1:${(l.address() as AddressInfo).port}`, sockets });
  } finally {
    server.forceShutdown();
    await new Promise<void>((r) => l.close(() => r()));
  }
}

describe('HTTP/2 server (http2.ts)', () => {
  let server: GrpcServer;
  let listener: NetServer;
  let address: string;
  const held = new Set<UnaryCallback<Buffer>>();
  // A bare connection whose acceptor answers with the request's header fields as JSON.
  let echoListener: NetServer;
  let echoAddress: string;

  before(async () => {
    server = new GrpcServer({ maxMessageBytes: 1 << 22, maxConcurrentStreams: MAX_STREAMS });
    server.addService(SERVICE, {
      Echo: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => callback(null, call.request),
      Big: (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => callback(null, Buffer.alloc(BIG, 0x61)),
      Hold: (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => held.add(callback),
    });
    listener = createServer((socket) => server.injectConnection(socket));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    address = `127.0.0.1:${(listener.address() as AddressInfo).port}`;
    echoListener = createServer((socket) => {
      new H2Connection(socket, { maxConcurrentStreams: 100 }, (stream, headers: RequestHeaders) => {
        const body = Buffer.from(JSON.stringify([...headers]));
        stream.sendAnswer(encodeHeaderBlock([[':status', '200']]), body, encodeHeaderBlock([['x-end', '1']]));
        return null;
      }, () => undefined);
    });
    await new Promise<void>((r) => echoListener.listen(0, '127.0.0.1', r));
    echoAddress = `127.0.0.1:${(echoListener.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const callback of held) callback(null, Buffer.alloc(0));
    server.forceShutdown();
    await new Promise<void>((r) => listener.close(() => r()));
    await new Promise<void>((r) => echoListener.close(() => r()));
  });

  /** A grpc-js call on a new connection answers: the server is serving. */
  const stillServing = async (): Promise<void> => {
    const client = new Client(address, credentials.createInsecure());
    try {
      assert.equal((await unaryBytes(client, '/t.T/Echo', Buffer.from('ping'))).toString(), 'ping');
    } finally {
      client.close();
    }
  };

  it('reads header blocks nghttp2 encodes: Huffman strings, the dynamic table as it fills and evicts, repeated fields', async () => {
    const s = await new Promise<ClientHttp2Session>((resolve, reject) => {
      const c = connectH2(`http://${echoAddress}`);
      c.once('remoteSettings', () => resolve(c));
      c.once('error', reject);
    });
    try {
      // Printable ASCII and Latin-1 letters in values (nghttp2 Huffman-codes a string when that
      // is shorter), names and values varied enough that the 4 KB table evicts many times.
      const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(0x20 + i)).join('').trim();
      for (let round = 0; round < 40; round++) {
        const sent: Record<string, string | string[]> = {
          ':method': 'POST', ':path': `/r/${round}`, 'content-type': 'application/grpc',
          [`x-name-${round % 7}`]: `${printable.slice(round % 50)}-${round}`,
          'x-latin': `caf\u00e9 ${'ab'.repeat(round)} \u00ff\u0080 end`,
          'x-long': 'eeeeettttt'.repeat(50 + round),
          'x-twice': ['one', 'two'],
          cookie: ['a=1', 'b=2'],
        };
        const stream = s.request(sent);
        stream.end();
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        await new Promise<void>((r, j) => stream.once('close', r).once('error', j));
        const got = new Map(JSON.parse(Buffer.concat(chunks).toString('utf8')) as [string, string][]);
        for (const [name, value] of Object.entries(sent)) {
          const want = Array.isArray(value) ? value.join(name === 'cookie' ? '; ' : ', ') : value;
          assert.equal(got.get(name), want, `${name} in round ${round}`);
        }
      }
    } finally {
      s.destroy();
    }
  });

  it('answers calls whose frames a client library would not send, but the protocol allows', async () => {
    const c = await RawClient.open(address);
    try {
      // Padded HEADERS with a priority, the block split over two CONTINUATIONs, then padded DATA
      // in two frames; an unknown frame type and a PRIORITY frame in between are ignored.
      const block = encodeHeaderBlock(requestFields('/t.T/Echo'));
      const headers = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 0, 16]), block.subarray(0, 10), Buffer.alloc(3)]);
      const message = grpcMessage(Buffer.from('padded'));
      c.send(
        frame(HEADERS, PADDED | PRIORITY_FLAG, 1, headers),
        frame(CONTINUATION, 0, 1, block.subarray(10, 30)),
        frame(CONTINUATION, END_HEADERS, 1, block.subarray(30)),
        frame(0xfa, 0, 0, Buffer.from('ignored')),
        frame(PRIORITY, 0, 1, Buffer.from([0, 0, 0, 0, 1])),
        frame(DATA, PADDED, 1, Buffer.concat([Buffer.from([2]), message.subarray(0, 4), Buffer.alloc(2)])),
        frame(DATA, END_STREAM, 1, message.subarray(4)),
      );
      const a = await c.answer(1);
      assert.equal(a.headers.get(':status'), '200');
      assert.equal(a.data.subarray(5).toString(), 'padded');
      assert.equal(a.trailers.get('grpc-status'), '0');
      // PING is answered with its payload.
      c.send(frame(PING, 0, 0, Buffer.from('12345678')));
      const pong = await c.next((f) => f.type === PING);
      assert.deepEqual({ flags: pong?.flags, payload: pong?.payload.toString() }, { flags: 1, payload: '12345678' });
    } finally {
      c.close();
    }
  });

  it('keeps to the client\'s windows and frame size: DATA waits for WINDOW_UPDATE, then the trailers', async () => {
    // INITIAL_WINDOW_SIZE 1000: the 40 KB answer goes out 1000 bytes per window the client opens.
    const c = await RawClient.open(address, Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, setting(4, 1000))]));
    try {
      await c.next((f) => f.type === SETTINGS && (f.flags & 1) === 1);
      c.call(1, '/t.T/Big', Buffer.alloc(0));
      const head = await c.next((f) => f.type === HEADERS && f.stream === 1);
      assert.ok(head !== null && (head.flags & END_STREAM) === 0);
      let got = 0;
      for (;;) {
        const f = await c.next((x) => x.stream === 1 && (x.type === DATA || x.type === HEADERS));
        assert.ok(f !== null);
        if (f.type === HEADERS) {
          assert.equal(f.flags & END_STREAM, END_STREAM);
          break;
        }
        assert.ok(f.payload.length <= 1000, `a DATA frame of ${f.payload.length} bytes within a window of 1000`);
        got += f.payload.length;
        // Nothing more until the window reopens.
        if (got % 1000 === 0) c.send(frame(WINDOW_UPDATE, 0, 1, u32(1000)));
      }
      assert.equal(got, 5 + BIG);
    } finally {
      c.close();
    }
  });

  it('splits DATA at the client\'s MAX_FRAME_SIZE', async () => {
    const c = await RawClient.open(address);
    try {
      c.send(frame(WINDOW_UPDATE, 0, 0, u32(1 << 20)));
      c.call(1, '/t.T/Big', Buffer.alloc(0));
      await c.next((f) => f.type === HEADERS && f.stream === 1);
      const sizes: number[] = [];
      for (;;) {
        const f = await c.next((x) => x.stream === 1 && (x.type === DATA || x.type === HEADERS));
        assert.ok(f !== null);
        if (f.type === HEADERS) break;
        sizes.push(f.payload.length);
      }
      assert.deepEqual(sizes, [16_384, 16_384, 5 + BIG - 2 * 16_384]);
    } finally {
      c.close();
    }
  });

  // Connection errors (RFC 9113 §5.4.1): GOAWAY with the code, and the connection closed.
  const CONNECTION_ERRORS: { name: string; opening?: Buffer; frames: Buffer[]; code: number }[] = [
    { name: 'bytes other than the client preface', opening: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), frames: [], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'a first frame other than SETTINGS', opening: PREFACE, frames: [frame(PING, 0, 0, Buffer.alloc(8))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'a frame over MAX_FRAME_SIZE', frames: [frame(0xfa, 0, 0, Buffer.alloc(16_385))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'SETTINGS of a length not a multiple of 6', frames: [frame(SETTINGS, 0, 0, Buffer.alloc(5))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'SETTINGS ACK with a payload', frames: [frame(SETTINGS, 1, 0, setting(4, 1))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'SETTINGS on a stream', frames: [frame(SETTINGS, 0, 1)], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'INITIAL_WINDOW_SIZE over 2^31 - 1', frames: [frame(SETTINGS, 0, 0, setting(4, 2 ** 31))], code: H2_ERROR.FLOW_CONTROL_ERROR },
    { name: 'MAX_FRAME_SIZE under 16384', frames: [frame(SETTINGS, 0, 0, setting(5, 100))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'ENABLE_PUSH of 2', frames: [frame(SETTINGS, 0, 0, setting(2, 2))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'PING of 7 bytes', frames: [frame(PING, 0, 0, Buffer.alloc(7))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'PING on a stream', frames: [frame(PING, 0, 1, Buffer.alloc(8))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'HEADERS on stream 0', frames: [frame(HEADERS, END_HEADERS, 0, encodeHeaderBlock(requestFields('/t.T/Echo')))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'a client stream with an even id', frames: [frame(HEADERS, END_HEADERS, 2, encodeHeaderBlock(requestFields('/t.T/Echo')))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'DATA on stream 0', frames: [frame(DATA, 0, 0, Buffer.alloc(1))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'DATA on an idle stream', frames: [frame(DATA, 0, 5, Buffer.alloc(1))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'DATA whose padding is as long as the frame', frames: [frame(HEADERS, END_HEADERS, 1, encodeHeaderBlock(requestFields('/t.T/Hold'))), frame(DATA, PADDED, 1, Buffer.from([3, 0, 0]))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'HEADERS too short for their priority', frames: [frame(HEADERS, END_HEADERS | PRIORITY_FLAG, 1, Buffer.alloc(3))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'RST_STREAM of 3 bytes', frames: [frame(RST_STREAM, 0, 1, Buffer.alloc(3))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'RST_STREAM on stream 0', frames: [frame(RST_STREAM, 0, 0, u32(8))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'RST_STREAM on an idle stream', frames: [frame(RST_STREAM, 0, 7, u32(8))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'WINDOW_UPDATE of 0 on the connection', frames: [frame(WINDOW_UPDATE, 0, 0, u32(0))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'a connection window past 2^31 - 1', frames: [frame(WINDOW_UPDATE, 0, 0, u32(0x7fffffff))], code: H2_ERROR.FLOW_CONTROL_ERROR },
    { name: 'WINDOW_UPDATE of 3 bytes', frames: [frame(WINDOW_UPDATE, 0, 0, Buffer.alloc(3))], code: H2_ERROR.FRAME_SIZE_ERROR },
    { name: 'PUSH_PROMISE from a client', frames: [frame(PUSH_PROMISE, END_HEADERS, 1, Buffer.alloc(4))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'CONTINUATION without HEADERS', frames: [frame(CONTINUATION, END_HEADERS, 1, Buffer.from([0x82]))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'another frame inside a header block', frames: [frame(HEADERS, 0, 1, Buffer.from([0x83])), frame(PING, 0, 0, Buffer.alloc(8))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'CONTINUATION on another stream', frames: [frame(HEADERS, 0, 1, Buffer.from([0x83])), frame(CONTINUATION, END_HEADERS, 3, Buffer.from([0x82]))], code: H2_ERROR.PROTOCOL_ERROR },
    { name: 'a CONTINUATION flood (empty frames that never end the block)', frames: [frame(HEADERS, 0, 1, Buffer.from([0x83])), ...Array.from({ length: 100 }, () => frame(CONTINUATION, 0, 1))], code: H2_ERROR.ENHANCE_YOUR_CALM },
    { name: 'a header block over MAX_HEADER_LIST_SIZE in CONTINUATIONs', frames: [frame(HEADERS, 0, 1, Buffer.from([0x83])), ...Array.from({ length: 5 }, () => frame(CONTINUATION, 0, 1, Buffer.alloc(16_000, 0x82)))], code: H2_ERROR.ENHANCE_YOUR_CALM },
    { name: 'a header block HPACK cannot decode (index 0)', frames: [frame(HEADERS, END_HEADERS, 1, Buffer.from([0x80]))], code: H2_ERROR.COMPRESSION_ERROR },
    { name: 'a header list that decodes past MAX_HEADER_LIST_SIZE (one table entry referenced again and again)', frames: [frame(HEADERS, END_HEADERS, 1, Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 0x7f, 0xb9, 0x16]), Buffer.alloc(3000, 0x61), Buffer.alloc(100, 0xbe)]))], code: H2_ERROR.COMPRESSION_ERROR },
  ];
  for (const t of CONNECTION_ERRORS) {
    it(`answers ${t.name} with GOAWAY ${t.code}, and keeps serving`, async () => {
      const c = await RawClient.open(address, t.opening ?? Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]));
      try {
        c.send(...t.frames);
        assert.equal(await c.goAway(), t.code);
      } finally {
        c.close();
      }
      await stillServing();
    });
  }

  // Stream errors (§5.4.2): RST_STREAM on that stream; the connection goes on.
  const MALFORMED: { name: string; fields: [string, string][] }[] = [
    { name: 'an upper-case field name', fields: [...requestFields('/t.T/Echo'), ['X-Tag', '1']] },
    { name: 'an empty field name', fields: [...requestFields('/t.T/Echo'), ['', '1']] },
    { name: 'a field name with a space', fields: [...requestFields('/t.T/Echo'), ['x tag', '1']] },
    { name: 'no :path', fields: requestFields('/t.T/Echo').filter(([n]) => n !== ':path') },
    { name: 'an empty :path', fields: requestFields('') },
    { name: 'no :method', fields: requestFields('/t.T/Echo').filter(([n]) => n !== ':method') },
    { name: 'no :scheme', fields: requestFields('/t.T/Echo').filter(([n]) => n !== ':scheme') },
    { name: ':path twice', fields: [[':path', '/t.T/Hold'], ...requestFields('/t.T/Echo')] },
    { name: 'a pseudo-header after a regular field', fields: [...requestFields('/t.T/Echo').filter(([n]) => n !== ':authority'), [':authority', 'x']] },
    { name: 'an unknown pseudo-header', fields: [[':protocol', 'websocket'], ...requestFields('/t.T/Echo')] },
    { name: 'a response pseudo-header', fields: [[':status', '200'], ...requestFields('/t.T/Echo')] },
    { name: 'CONNECT', fields: [[':method', 'CONNECT'], [':authority', 'x:1']] },
    { name: 'a connection-specific field', fields: [...requestFields('/t.T/Echo'), ['connection', 'keep-alive']] },
    { name: 'transfer-encoding', fields: [...requestFields('/t.T/Echo'), ['transfer-encoding', 'chunked']] },
    { name: 'te other than trailers', fields: [...requestFields('/t.T/Echo').filter(([n]) => n !== 'te'), ['te', 'gzip']] },
    { name: 'a value with CR LF', fields: [...requestFields('/t.T/Echo'), ['x-tag', 'a\r\nx-injected: 1']] },
    { name: 'a value with NUL', fields: [...requestFields('/t.T/Echo'), ['x-tag', 'a\0b']] },
    { name: 'a value with a leading space', fields: [...requestFields('/t.T/Echo'), ['x-tag', ' a']] },
    { name: 'a value with a trailing tab', fields: [...requestFields('/t.T/Echo'), ['x-tag', 'a\t']] },
  ];
  it('refuses malformed requests with RST_STREAM PROTOCOL_ERROR, each, and answers the next call on the same connection', async () => {
    const c = await RawClient.open(address);
    try {
      let stream = 1;
      for (const t of MALFORMED) {
        c.send(frame(HEADERS, END_HEADERS, stream, encodeHeaderBlock(t.fields)), frame(DATA, END_STREAM, stream, grpcMessage(Buffer.from('x'))));
        assert.equal(await c.reset(stream), H2_ERROR.PROTOCOL_ERROR, t.name);
        stream += 2;
      }
      c.call(stream, '/t.T/Echo', Buffer.from('after'));
      assert.equal((await c.answer(stream)).data.subarray(5).toString(), 'after');
    } finally {
      c.close();
    }
  });

  it('resets a stream for DATA after its END_STREAM, trailers without END_STREAM, a window update of 0 or past 2^31 - 1', async () => {
    const c = await RawClient.open(address);
    try {
      const open = (id: number, path = '/t.T/Hold'): void => c.send(frame(HEADERS, END_HEADERS, id, encodeHeaderBlock(requestFields(path))));
      open(1);
      c.send(frame(DATA, END_STREAM, 1, grpcMessage(Buffer.alloc(0))), frame(DATA, 0, 1, Buffer.alloc(1)));
      assert.equal(await c.reset(1), H2_ERROR.STREAM_CLOSED);
      open(3);
      c.send(frame(HEADERS, END_HEADERS, 3, encodeHeaderBlock([['x-trailer', '1']])));
      assert.equal(await c.reset(3), H2_ERROR.PROTOCOL_ERROR);
      open(5);
      c.send(frame(WINDOW_UPDATE, 0, 5, u32(0)));
      assert.equal(await c.reset(5), H2_ERROR.PROTOCOL_ERROR);
      open(7);
      c.send(frame(WINDOW_UPDATE, 0, 7, u32(0x7fffffff)));
      assert.equal(await c.reset(7), H2_ERROR.FLOW_CONTROL_ERROR);
      c.call(9, '/t.T/Echo', Buffer.from('still'));
      assert.equal((await c.answer(9)).data.subarray(5).toString(), 'still');
    } finally {
      c.close();
    }
  });

  it('reads and drops what a refused call still sends, past the windows it started with, and answers others on the connection', async () => {
    const c = await RawClient.open(address);
    try {
      // 5 MiB declared, over the 4 MiB limit: refused from the prefix; then 2 MiB more on that
      // stream, twice its first window and beyond the connection's default one, which only
      // goes through if the windows are reopened as the bytes are read.
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(5 << 20, 1);
      c.send(frame(HEADERS, END_HEADERS, 1, encodeHeaderBlock(requestFields('/t.T/Echo'))), frame(DATA, 0, 1, prefix));
      assert.equal((await c.answer(1)).headers.get('grpc-status'), '8');
      const chunk = frame(DATA, 0, 1, Buffer.alloc(16_384));
      for (let i = 0; i < 128; i++) c.send(chunk);
      c.call(3, '/t.T/Echo', Buffer.from('next'));
      assert.equal((await c.answer(3)).data.subarray(5).toString(), 'next');
      const updates = await c.next((f) => f.type === WINDOW_UPDATE && f.stream === 1);
      assert.ok(updates !== null, 'the refused stream\'s window was reopened');
      // Answered but still open on the client's side: a protocol error on it still resets it.
      c.send(frame(WINDOW_UPDATE, 0, 1, u32(0)));
      assert.equal(await c.reset(1), H2_ERROR.PROTOCOL_ERROR);
    } finally {
      c.close();
    }
  });

  it('refuses streams past MAX_CONCURRENT_STREAMS with REFUSED_STREAM, and takes new ones as streams end', async () => {
    const c = await RawClient.open(address);
    try {
      const settings = await c.next((f) => f.type === SETTINGS && (f.flags & 1) === 0);
      const advertised = new Map<number, number>();
      for (let p = 0; p < (settings?.payload.length ?? 0); p += 6) advertised.set(settings?.payload.readUInt16BE(p) as number, settings?.payload.readUInt32BE(p + 2) as number);
      assert.equal(advertised.get(3), MAX_STREAMS);
      for (let i = 0; i < MAX_STREAMS; i++) c.send(frame(HEADERS, END_HEADERS, 1 + 2 * i, encodeHeaderBlock(requestFields('/t.T/Hold'))));
      const over = 1 + 2 * MAX_STREAMS;
      c.call(over, '/t.T/Echo', Buffer.from('x'));
      assert.equal(await c.reset(over), H2_ERROR.REFUSED_STREAM);
      // One held stream cancelled by the client: room for one more.
      c.send(frame(RST_STREAM, 0, 1, u32(H2_ERROR.CANCEL)));
      c.call(over + 2, '/t.T/Echo', Buffer.from('room'));
      assert.equal((await c.answer(over + 2)).data.subarray(5).toString(), 'room');
    } finally {
      c.close();
    }
  });

  it('closes a connection that resets streams faster than it could be answered (rapid reset) with ENHANCE_YOUR_CALM', async () => {
    const c = await RawClient.open(address);
    try {
      const burst: Buffer[] = [];
      for (let i = 0; i < 1200; i++) {
        const id = 1 + 2 * i;
        burst.push(frame(HEADERS, END_HEADERS, id, encodeHeaderBlock(requestFields('/t.T/Hold'))), frame(RST_STREAM, 0, id, u32(H2_ERROR.CANCEL)));
      }
      c.send(...burst);
      assert.equal(await c.goAway(), H2_ERROR.ENHANCE_YOUR_CALM);
    } finally {
      c.close();
    }
    await stillServing();
  });

  it('goes away gracefully: GOAWAY NO_ERROR with the last stream taken, the call in flight answered, later streams refused', async () => {
    let answer: UnaryCallback<Buffer> | null = null;
    const hold = (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>): void => {
      answer = callback;
    };
    await withServer({ maxMessageBytes: 1024, maxConcurrentStreams: 8 }, { Hold: hold }, async ({ server: own, address: at }) => {
      const c = await RawClient.open(at);
      try {
        c.call(1, '/t.T/Hold', Buffer.from('held'));
        while (answer === null) await new Promise((r) => setTimeout(r, 10));
        let done = false;
        own.tryShutdown(() => {
          done = true;
        });
        const away = await c.next((f) => f.type === GOAWAY);
        assert.deepEqual([away?.payload.readUInt32BE(0), away?.payload.readUInt32BE(4)], [1, H2_ERROR.NO_ERROR]);
        c.call(3, '/t.T/Hold', Buffer.from('late'));
        assert.equal(await c.reset(3), H2_ERROR.REFUSED_STREAM);
        assert.equal(done, false);
        (answer as UnaryCallback<Buffer>)(null, Buffer.from('answered'));
        assert.equal((await c.answer(1)).data.subarray(5).toString(), 'answered');
        await c.next(() => false).catch(() => assert.fail('the connection stayed open'));
        for (let i = 0; i < 50 && !done; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(done, true);
      } finally {
        c.close();
      }
    });
  });
});

describe('many calls at once on one connection', () => {
  it('answers each call with its own request: 2,000 grpc-js calls, 200 in flight, bodies and metadata large enough to span frames', async () => {
    // Each answer carries the request's body and its x-tag metadata back: an answer written to
    // another stream, or assembled from another stream's frames, is a mismatch here.
    const echo = (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>): void => {
      const tag = String(call.metadata.get('x-tag')[0] ?? '');
      // Some answers now, some a little later: answers interleave with requests still arriving.
      const answer = (): void => callback(null, Buffer.concat([Buffer.from(`${tag}|`), call.request]));
      if (call.request.length % 3 === 0) setImmediate(answer);
      else answer();
    };
    await withServer({ maxMessageBytes: 1 << 20, maxConcurrentStreams: 100 }, { Echo: echo }, async ({ address: at }) => {
      const client = new Client(at, credentials.createInsecure());
      try {
        const CALLS = 2000;
        let next = 0;
        let mismatches = 0;
        const one = async (i: number): Promise<void> => {
          // Bodies from a few bytes to 40 KB (DATA in several frames each way); metadata up to
          // 20 KB (a header block in HEADERS and CONTINUATION frames).
          const body = Buffer.alloc(i % 7 === 0 ? 40_000 + i : 10 + (i % 300), i % 251);
          body.writeUInt32BE(i, 0);
          const metadata = new Metadata();
          const tag = i % 11 === 0 ? `${i}-${'m'.repeat(20_000)}` : `${i}`;
          metadata.set('x-tag', tag);
          const got = await unaryBytes(client, '/t.T/Echo', body, metadata, 20_000);
          if (!got.equals(Buffer.concat([Buffer.from(`${tag}|`), body]))) mismatches++;
        };
        const worker = async (): Promise<void> => {
          while (next < CALLS) await one(next++);
        };
        await Promise.all(Array.from({ length: 200 }, worker));
        assert.equal(mismatches, 0);
        assert.equal(next, CALLS);
      } finally {
        client.close();
      }
    });
  });
});

describe('a client that does not read', () => {
  it('is not answered into memory: reading stops while 256 KiB of answers wait, and goes on once it reads', async () => {
    await withServer({ maxMessageBytes: 1024, maxConcurrentStreams: 8 }, {}, async ({ address: at, sockets }) => {
      const PINGS = 1_000_000;
      const client = connectTcp(Number(at.split(':')[1]), '127.0.0.1');
      try {
        await new Promise<void>((r) => client.once('connect', () => r()));
        client.pause();
        const ping = frame(PING, 0, 0, Buffer.from('pingpong'));
        client.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0), ...Array.from({ length: PINGS }, () => ping)]));
        await new Promise((r) => setTimeout(r, 500));
        const side = sockets[0] as Socket;
        assert.ok(side.writableLength < 512 << 10, `${side.writableLength} bytes of answers held for a client that does not read`);
        assert.ok(side.bytesRead < PINGS * 17, 'the server stopped reading');
        // Once the client reads, every PING is answered.
        let acks = 0;
        let pending = Buffer.alloc(0);
        await new Promise<void>((resolve) => {
          client.on('data', (d: Buffer) => {
            pending = Buffer.concat([pending, d]);
            let at = 0;
            while (pending.length - at >= 9) {
              const length = pending.readUIntBE(at, 3);
              if (pending.length - at < 9 + length) break;
              if (pending[at + 3] === PING && pending[at + 4] === 1) acks++;
              at += 9 + length;
            }
            pending = pending.subarray(at);
            if (acks === PINGS) resolve();
          });
          client.resume();
        });
        assert.equal(acks, PINGS);
      } finally {
        client.destroy();
      }
    });
  });
});

describe('HTTP/2 errors counted (metrics)', () => {
  it('counts each GOAWAY for a protocol error and each stream reset, by code', async () => {
    await withServer({ maxMessageBytes: 1024, maxConcurrentStreams: 1 }, { Hold: () => undefined }, async ({ server: own, address: at }) => {
      const c = await RawClient.open(at);
      c.send(frame(HEADERS, END_HEADERS, 1, encodeHeaderBlock(requestFields('/t.T/Hold'))));
      c.send(frame(HEADERS, END_HEADERS, 3, encodeHeaderBlock(requestFields('/t.T/Hold'))));
      assert.equal(await c.reset(3), H2_ERROR.REFUSED_STREAM);
      c.send(frame(PING, 0, 0, Buffer.alloc(7)));
      assert.equal(await c.goAway(), H2_ERROR.FRAME_SIZE_ERROR);
      c.close();
      const counted = (list: number[]): Record<string, number> => Object.fromEntries(list.flatMap((n, code) => (n > 0 ? [[code, n]] : [])));
      assert.deepEqual(counted(own.http2Stats.streamErrors), { [H2_ERROR.REFUSED_STREAM]: 1 });
      assert.deepEqual(counted(own.http2Stats.connectionErrors), { [H2_ERROR.FRAME_SIZE_ERROR]: 1 });
    });
  });
});

describe('node:http2 clients against http2.ts', () => {
  it('drops the late answer of a call the client reset, and the connection goes on', async () => {
    const events: string[] = [];
    let late: UnaryCallback<Buffer> | null = null;
    const hold = (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>): void => {
      late = callback;
      events.push('called');
    };
    await withServer({ maxMessageBytes: 1024, maxConcurrentStreams: 8 }, { Hold: hold }, async ({ address: at }) => {
      const s = connectH2(`http://${at}`);
      try {
        const stream = s.request({ ':method': 'POST', ':path': '/t.T/Hold', 'content-type': 'application/grpc' });
        stream.end(grpcMessage(Buffer.from('x')));
        let headers: IncomingHttpHeaders | null = null;
        stream.on('response', (h) => {
          headers = h;
        });
        stream.on('error', () => undefined);
        while (late === null) await new Promise((r) => setTimeout(r, 10));
        stream.close(8);
        await new Promise((r) => setTimeout(r, 50));
        (late as UnaryCallback<Buffer>)(null, Buffer.from('too late'));
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(headers, null);
        assert.deepEqual(events, ['called']);
        // The connection still serves.
        const next = s.request({ ':method': 'POST', ':path': '/nope', 'content-type': 'application/grpc' });
        next.end();
        const h = await new Promise<IncomingHttpHeaders>((r) => next.once('response', r));
        assert.equal(h['grpc-status'], '12');
      } finally {
        s.destroy();
      }
    });
  });
});
