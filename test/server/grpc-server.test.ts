// Our gRPC server over our own HTTP/2 (src/server/grpc-server.ts, http2.ts), on a real port, asked by a real
// grpc-js client and by raw HTTP/2 for what no client library sends: every malformed call ends
// in the gRPC status grpc-js's own server gives it, and the server keeps serving.

import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { createServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { encodeGrpcMessage, GrpcServer, GRPC_STATUS, type MethodDefinition, type ServerCall, type ServerStreamCall, type UnaryCallback } from '../../src/server/grpc-server.js';

const identity = (b: Buffer): Buffer => b;
const method = (path: string, responseStream = false): MethodDefinition => ({ path, requestStream: false, responseStream, requestDeserialize: identity, responseSerialize: identity as (v: never) => Buffer });
const SERVICE = {
  Echo: method('/test.Echo/Echo'),
  Slow: method('/test.Echo/Slow'),
  Later: method('/test.Echo/Later'),
  Fail: method('/test.Echo/Fail'),
  Throw: method('/test.Echo/Throw'),
  Strict: { ...method('/test.Echo/Strict'), requestDeserialize: (b: Buffer): Buffer => { if (b[0] !== 0x2a) throw new Error('bad'); return b; } },
  Watch: method('/test.Echo/Watch', true),
};
const MAX = 4096;

interface Running {
  readonly address: string;
  readonly server: GrpcServer;
  readonly listener: NetServer;
  readonly cancelled: string[];
  readonly slow: Set<UnaryCallback<Buffer>>;
}

async function start(): Promise<Running> {
  const server = new GrpcServer({ maxMessageBytes: MAX, maxConcurrentStreams: 16 });
  const cancelled: string[] = [];
  const slow = new Set<UnaryCallback<Buffer>>();
  server.addService(SERVICE, {
    Echo: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => {
      const tag = call.metadata.get('x-tag');
      callback(null, Buffer.concat([Buffer.from(`${String(tag[0] ?? '')}|${Number.isFinite(call.getDeadline()) ? 'deadline' : 'none'}|`), call.request]));
    },
    Slow: (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => slow.add(callback),
    Later: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => setTimeout(() => callback(null, call.request), 30),
    Fail: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => callback({ code: GRPC_STATUS.PERMISSION_DENIED, details: call.request.toString('utf8') }),
    Throw: async () => {
      throw new Error('handler bug');
    },
    Strict: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => callback(null, call.request),
    Watch: (call: ServerStreamCall<Buffer>) => {
      call.write(Buffer.from('one'));
      call.write(Buffer.from('two'));
      call.on('cancelled', () => cancelled.push('watch'));
    },
  });
  const listener = createServer((socket) => server.injectConnection(socket));
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${(listener.address() as AddressInfo).port}`, server, listener, cancelled, slow };
}

function unary(address: string, path: string, body: Buffer, options: { deadlineMs?: number; metadata?: Metadata; channel?: Record<string, unknown> } = {}): Promise<Buffer> {
  const client = new Client(address, credentials.createInsecure(), options.channel ?? {});
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, options.metadata ?? new Metadata(), { deadline: Date.now() + (options.deadlineMs ?? 5000) }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res as Buffer);
    });
  });
}

function session(address: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = connect(`http://${address}`);
    s.once('remoteSettings', () => resolve(s));
    s.once('error', reject);
  });
}

/** Runs `use` on a fresh raw HTTP/2 connection, closed afterwards whatever happens. */
async function onSession(address: string, use: (s: ClientHttp2Session) => Promise<void>): Promise<void> {
  const s = await session(address);
  try {
    await use(s);
  } finally {
    s.destroy();
  }
}

function grpcFrame(body: Buffer, compressed = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

interface RawAnswer {
  readonly status: number;
  readonly grpcStatus: string | null;
  readonly grpcMessage: string | null;
  readonly data: Buffer;
  readonly headers: IncomingHttpHeaders;
}

/** One call over raw HTTP/2: `frames` are written, then the stream is ended unless `keepOpen`. */
function raw(s: ClientHttp2Session, headers: Record<string, string>, frames: Buffer[], keepOpen = false): Promise<RawAnswer> {
  const stream = s.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
  for (const f of frames) stream.write(f);
  if (!keepOpen) stream.end();
  return new Promise((resolve, reject) => {
    let head: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const finish = (trailers: IncomingHttpHeaders): void => {
      const status = trailers['grpc-status'] ?? head['grpc-status'];
      const message = trailers['grpc-message'] ?? head['grpc-message'];
      resolve({ status: Number(head[':status']), grpcStatus: status === undefined ? null : String(status), grpcMessage: message === undefined ? null : String(message), data: Buffer.concat(chunks), headers: head });
      if (keepOpen) stream.close(constants.NGHTTP2_CANCEL);
    };
    stream.on('response', (h) => {
      head = h;
      if (h['grpc-status'] !== undefined || h[':status'] !== 200) finish({});
    });
    stream.on('trailers', (t) => finish(t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
  });
}

describe('gRPC server over http2.ts', () => {
  let running: Running;
  before(async () => {
    running = await start();
  });
  after(async () => {
    running.server.forceShutdown();
    await new Promise<void>((r) => running.listener.close(() => r()));
  });

  const stillServing = async (): Promise<void> => {
    assert.equal((await unary(running.address, '/test.Echo/Echo', Buffer.from('ping'))).toString(), '|deadline|ping');
  };

  it('answers a unary call from grpc-js, with its metadata and deadline', async () => {
    const metadata = new Metadata();
    metadata.set('x-tag', 'seven');
    assert.equal((await unary(running.address, '/test.Echo/Echo', Buffer.from('hello'), { metadata })).toString(), 'seven|deadline|hello');
    // An empty message is a message.
    assert.equal((await unary(running.address, '/test.Echo/Echo', Buffer.alloc(0))).toString(), '|deadline|');
  });

  it('answers a call without grpc-timeout with no deadline', async () => {
    await onSession(running.address, async (s) => {
      const r = await raw(s, { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.from('x'))]);
      assert.equal(r.grpcStatus, '0');
      assert.equal(r.data.subarray(5).toString(), '|none|x');
      // What an answer's headers hold: gRPC's content type and the encodings it reads, nothing
      // else (no date, no grpc-encoding: identity is the default).
      const names = Object.keys(r.headers).filter((k) => k !== ':status').sort();
      assert.deepEqual(names, ['content-type', 'grpc-accept-encoding']);
      assert.equal(r.headers['content-type'], 'application/grpc+proto');
    });
  });

  it('sends the handler\'s error status with its details, percent-encoded where not printable ASCII', async () => {
    const details = 'not yours: 100% \u00e9t\u00e9\nnext line';
    await assert.rejects(unary(running.address, '/test.Echo/Fail', Buffer.from(details)), (e: ServiceError) => e.code === GRPC_STATUS.PERMISSION_DENIED && e.details === details);
    assert.equal(encodeGrpcMessage('plain text'), 'plain text');
    assert.equal(encodeGrpcMessage('a%b\u00e9\n'), 'a%25b%C3%A9%0A');
    // A lone surrogate (encodeURI throws on it) is written as UTF-8's replacement character.
    assert.equal(encodeGrpcMessage('x\ud800'), 'x%EF%BF%BD');
    await stillServing();
  });

  it('answers a handler that throws with INTERNAL', async () => {
    await assert.rejects(unary(running.address, '/test.Echo/Throw', Buffer.from('x')), (e: ServiceError) => e.code === GRPC_STATUS.INTERNAL);
    await stillServing();
  });

  it('answers a request that does not deserialize with INTERNAL', async () => {
    await assert.rejects(unary(running.address, '/test.Echo/Strict', Buffer.from('x')), (e: ServiceError) => e.code === GRPC_STATUS.INTERNAL && e.details === 'Error deserializing request');
    assert.equal((await unary(running.address, '/test.Echo/Strict', Buffer.from('*'))).toString(), '*');
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    await assert.rejects(unary(running.address, '/test.Echo/Nope', Buffer.from('x')), (e: ServiceError) => e.code === GRPC_STATUS.UNIMPLEMENTED && e.details === 'The server does not implement the method /test.Echo/Nope');
    await stillServing();
  });

  it('answers a call that outlives its deadline with DEADLINE_EXCEEDED, and drops the late answer', async () => {
    running.slow.clear();
    await assert.rejects(unary(running.address, '/test.Echo/Slow', Buffer.from('x'), { deadlineMs: 150 }), (e: ServiceError) => e.code === GRPC_STATUS.DEADLINE_EXCEEDED);
    assert.equal(running.slow.size, 1);
    for (const late of running.slow) late(null, Buffer.from('late'));
    // The status is the server's own (grpc-js's client also gives up at the deadline by itself).
    await onSession(running.address, async (s) => {
      const r = await raw(s, { ':path': '/test.Echo/Slow', 'grpc-timeout': '100m' }, [grpcFrame(Buffer.from('x'))]);
      assert.deepEqual([r.grpcStatus, r.grpcMessage], [String(GRPC_STATUS.DEADLINE_EXCEEDED), 'Deadline exceeded']);
    });
    await stillServing();
  });

  it('reads a gzip-compressed request, and refuses one that inflates past the limit', async () => {
    const gzip = { 'grpc.default_compression_algorithm': 2 };
    assert.equal((await unary(running.address, '/test.Echo/Echo', Buffer.from('squeezed'), { channel: gzip })).toString(), '|deadline|squeezed');
    await onSession(running.address, async (s) => {
      const bomb = await raw(s, { ':path': '/test.Echo/Echo', 'grpc-encoding': 'gzip' }, [grpcFrame(gzipSync(Buffer.alloc(MAX * 10)), 1)]);
      assert.equal(bomb.grpcStatus, String(GRPC_STATUS.RESOURCE_EXHAUSTED));
      const corrupt = await raw(s, { ':path': '/test.Echo/Echo', 'grpc-encoding': 'gzip' }, [grpcFrame(Buffer.from('not gzip'), 1)]);
      assert.deepEqual([corrupt.grpcStatus, corrupt.grpcMessage], [String(GRPC_STATUS.INTERNAL), 'Failed to decompress message']);
      const unknown = await raw(s, { ':path': '/test.Echo/Echo', 'grpc-encoding': 'snappy' }, [grpcFrame(Buffer.from('x'), 1)]);
      assert.equal(unknown.grpcStatus, String(GRPC_STATUS.UNIMPLEMENTED));
      // The compressed flag without any grpc-encoding: nothing says how to read it.
      const none = await raw(s, { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.from('x'), 1)]);
      assert.equal(none.grpcStatus, String(GRPC_STATUS.UNIMPLEMENTED));
    });
    await stillServing();
  });

  it('refuses what grpc-js refuses, each with its status, over raw HTTP/2', async () => {
    await onSession(running.address, async (s) => {
      const cases: [string, Record<string, string>, Buffer[], number | string][] = [
        ['a content type that is not gRPC', { ':path': '/test.Echo/Echo', 'content-type': 'application/json' }, [grpcFrame(Buffer.from('x'))], 'http 415'],
        ['a malformed grpc-timeout', { ':path': '/test.Echo/Echo', 'grpc-timeout': '1 fortnight' }, [grpcFrame(Buffer.from('x'))], GRPC_STATUS.INTERNAL],
        ['a grpc-timeout of nine digits', { ':path': '/test.Echo/Echo', 'grpc-timeout': '123456789S' }, [grpcFrame(Buffer.from('x'))], GRPC_STATUS.INTERNAL],
        ['no message at all', { ':path': '/test.Echo/Echo' }, [], GRPC_STATUS.UNIMPLEMENTED],
        ['half a length prefix', { ':path': '/test.Echo/Echo' }, [Buffer.from([0, 0, 0])], GRPC_STATUS.UNIMPLEMENTED],
        ['a message cut short', { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.from('abcdef')).subarray(0, 8)], GRPC_STATUS.UNIMPLEMENTED],
        ['two messages on a unary call', { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.from('a')), grpcFrame(Buffer.from('b'))], GRPC_STATUS.UNIMPLEMENTED],
        ['two messages in one DATA frame', { ':path': '/test.Echo/Echo' }, [Buffer.concat([grpcFrame(Buffer.from('a')), grpcFrame(Buffer.from('b'))])], GRPC_STATUS.UNIMPLEMENTED],
        ['a length prefix over the limit', { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.alloc(MAX + 1))], GRPC_STATUS.RESOURCE_EXHAUSTED],
      ];
      for (const [what, headers, frames, want] of cases) {
        const r = await raw(s, headers, frames);
        if (want === 'http 415') assert.deepEqual([r.status, r.grpcStatus], [415, null], what);
        else assert.deepEqual([r.status, r.grpcStatus], [200, String(want)], what);
      }
      // A prefix over the limit is refused before the message is sent (the stream stays open).
      const early = await raw(s, { ':path': '/test.Echo/Echo' }, [grpcFrame(Buffer.alloc(10)).subarray(0, 5).fill(0xff, 1, 5)], true);
      assert.equal(early.grpcStatus, String(GRPC_STATUS.RESOURCE_EXHAUSTED));
      // A length prefix split across DATA frames is read whole.
      const split = grpcFrame(Buffer.from('split'));
      const r = await raw(s, { ':path': '/test.Echo/Echo' }, [split.subarray(0, 2), split.subarray(2, 4), split.subarray(4)]);
      assert.equal(r.data.subarray(5).toString(), '|none|split');
      // The longest timeout there is (8 digits of hours) is a deadline, not an overflow (a timer
      // that long would fire after 1 ms).
      const far = await raw(s, { ':path': '/test.Echo/Later', 'grpc-timeout': '99999999H' }, [grpcFrame(Buffer.from('far'))]);
      assert.deepEqual([far.grpcStatus, far.data.subarray(5).toString()], ['0', 'far']);
    });
    await stillServing();
  });

  it('reads a message that comes in many DATA frames, whatever their sizes', async () => {
    await onSession(running.address, async (s) => {
      const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => 97 + (i % 26)));
      const frame = grpcFrame(body);
      const stream = s.request({ ':method': 'POST', ':path': '/test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
      const answer = new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('trailers', () => resolve(Buffer.concat(chunks)));
        stream.on('error', reject);
      });
      // Pieces of 1, 2, 3, ... bytes, each written on its own turn of the event loop.
      let at = 0;
      for (let size = 1; at < frame.length; size++) {
        stream.write(frame.subarray(at, Math.min(at + size, frame.length)));
        at += size;
        await new Promise((r) => setImmediate(r));
      }
      stream.end();
      assert.equal((await answer).subarray(5).toString(), `|none|${body.toString()}`);
    });
  });

  it('streams a server-streaming call, and tells the handler when the client cancels', async () => {
    const client = new Client(running.address, credentials.createInsecure());
    try {
      const call = client.makeServerStreamRequest('/test.Echo/Watch', identity, identity, Buffer.from('w'));
      const got: string[] = [];
      await new Promise<void>((resolve) => {
        call.on('data', (b: Buffer) => {
          got.push(b.toString());
          if (got.length === 2) resolve();
        });
        call.on('error', () => undefined);
      });
      assert.deepEqual(got, ['one', 'two']);
      call.cancel();
      const deadline = Date.now() + 5000;
      while (running.cancelled.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(running.cancelled, ['watch']);
    } finally {
      client.close();
    }
  });

  it('shuts down gracefully: the call in flight is answered, new calls are refused', async () => {
    const own = await start();
    const answered = unary(own.address, '/test.Echo/Slow', Buffer.from('x'));
    const deadline = Date.now() + 5000;
    while (own.slow.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    let closed = false;
    own.server.tryShutdown(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false, 'shutdown waits for the call in flight');
    for (const cb of own.slow) cb(null, Buffer.from('finished'));
    assert.equal((await answered).toString(), 'finished');
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(closed, true);
    // A connection that arrives after shutdown is told to go away at once.
    await assert.rejects(unary(own.address, '/test.Echo/Echo', Buffer.from('x'), { deadlineMs: 1000 }), (e: ServiceError) => e.code === GRPC_STATUS.UNAVAILABLE || e.code === GRPC_STATUS.DEADLINE_EXCEEDED);
    await new Promise<void>((r) => own.listener.close(() => r()));
  });
});
