// Random input against Mandate's HTTP/2 and HPACK: what no list of cases thought of. HPACK blocks
// (random bytes, and valid blocks with bytes changed) either decode or fail with HpackError,
// never another exception; frame sequences on real connections (random types, flags, stream ids,
// payloads, among valid calls) never take the server down, every frame it sends is well formed,
// and it only ever answers on a stream the client opened: an answer on another stream would be
// a decision about a different request. The seed is printed; MANDATE_FUZZ_SEED=<seed> replays.

import assert from 'node:assert/strict';
import { connect as connectTcp, createServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, credentials } from '@grpc/grpc-js';
import { encodeHeaderBlock, HpackDecoder, HpackError } from '../../src/server/hpack.js';
import { GrpcServer, type MethodDefinition, type ServerCall, type UnaryCallback } from '../../src/server/grpc-server.js';
import { Rng } from '../helpers/cedar-fuzz.js';
import { unaryBytes } from '../helpers/raw-client.js';

const SEED = process.env['MANDATE_FUZZ_SEED'] !== undefined ? Number(process.env['MANDATE_FUZZ_SEED']) : (Date.now() % 1_000_000_007) >>> 0;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const identity = (b: Buffer): Buffer => b;
const method = (path: string): MethodDefinition => ({ path, requestStream: false, responseStream: false, requestDeserialize: identity, responseSerialize: identity as (v: never) => Buffer });

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream >>> 0, 5);
  return Buffer.concat([head, payload]);
}

function bytes(rng: Rng, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => rng.int(256)));
}

/** Valid blocks to start from: RFC 7541's examples and blocks as our encoder writes them. */
const SEED_BLOCKS = [
  '828684410f7777772e6578616d706c652e636f6d',
  '828684418cf1e3c2e5f23a6ba0ab90f4ff',
  '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565',
  '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf',
].map((h) => Buffer.from(h, 'hex'));

function requestBlock(path: string): Buffer {
  return encodeHeaderBlock([[':method', 'POST'], [':scheme', 'http'], [':path', path], ['content-type', 'application/grpc'], ['te', 'trailers']]);
}

function grpcMessage(body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe(`HTTP/2 and HPACK under random input (seed ${SEED})`, () => {
  it('decodes or refuses with HpackError every block, never another exception, never past the list limit', () => {
    process.stdout.write(`# fuzz seed ${SEED} (replay: MANDATE_FUZZ_SEED=${SEED})\n`);
    const rng = new Rng(SEED);
    const shared = new HpackDecoder(4096);
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      let block: Buffer;
      if (rng.chance(0.4)) block = bytes(rng, 1 + rng.int(40));
      else {
        block = Buffer.from(rng.pick([...SEED_BLOCKS, requestBlock(`/x/${i}`)]));
        for (let k = 1 + rng.int(3); k > 0; k--) block[rng.int(block.length)] = rng.int(256);
      }
      for (const decoder of [new HpackDecoder(4096), shared]) {
        let listBytes = 0;
        try {
          decoder.decode(block, 0, block.length, 8192, (name, value) => {
            assert.equal(typeof name, 'string');
            assert.equal(typeof value, 'string');
            listBytes += name.length + value.length + 32;
          });
          decoded++;
        } catch (err) {
          assert.ok(err instanceof HpackError, `seed ${SEED}, block ${i} (${block.toString('hex')}): ${String(err)}`);
        }
        assert.ok(listBytes <= 8192, `seed ${SEED}, block ${i}: ${listBytes} bytes of fields past the limit`);
      }
    }
    assert.ok(decoded > 1000, `only ${decoded} blocks decoded: the generator no longer makes valid ones`);
  });

  let server: GrpcServer;
  let listener: NetServer;
  let address: string;
  const held: UnaryCallback<Buffer>[] = [];
  before(async () => {
    server = new GrpcServer({ maxMessageBytes: 4096, maxConcurrentStreams: 8 });
    server.addService({ Echo: method('/t.T/Echo'), Hold: method('/t.T/Hold') }, {
      Echo: (call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => callback(null, call.request),
      Hold: (_call: ServerCall<Buffer>, callback: UnaryCallback<Buffer>) => {
        held.push(callback);
        // Answered later, maybe after the stream or connection is gone.
        setTimeout(() => callback(null, Buffer.from('late')), 5);
      },
    });
    listener = createServer((socket) => server.injectConnection(socket));
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    address = `127.0.0.1:${(listener.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.forceShutdown();
    await new Promise<void>((r) => listener.close(() => r()));
  });

  it('survives random frame sequences, answers only on streams the client opened, and keeps serving', async () => {
    const rng = new Rng(SEED ^ 0x5eed);
    const port = Number(address.split(':')[1]);
    for (let c = 0; c < 150; c++) {
      const opened = new Set<number>();
      const out: Buffer[] = [PREFACE, frame(4, 0, 0, Buffer.alloc(0))];
      let nextId = 1;
      for (let f = 0, n = 1 + rng.int(30); f < n; f++) {
        const roll = rng.int(10);
        if (roll < 3) {
          // A valid call, or its start.
          const id = nextId;
          nextId += 2;
          opened.add(id);
          out.push(frame(1, 4, id, requestBlock(rng.pick(['/t.T/Echo', '/t.T/Hold', '/t.T/Nope']))));
          if (rng.chance(0.8)) out.push(frame(0, 1, id, grpcMessage(bytes(rng, rng.int(20)))));
        } else {
          // Anything: a type (the ten of RFC 9113 and unknown ones), flags, a stream id near the
          // ones in use, a payload of random bytes or of a plausible length.
          const type = rng.int(12);
          const flags = rng.pick([0, 1, 4, 5, 8, 0x20, 0x25, 0xff]);
          const id = rng.pick([0, 1, 2, 3, nextId, nextId + 2, 0x7fffffff, rng.int(20)]);
          if (type === 1 || type === 9) opened.add(id);
          const payload = rng.chance(0.5) ? bytes(rng, rng.pick([0, 4, 5, 6, 8, 9, rng.int(64)])) : type === 1 ? requestBlock('/t.T/Echo') : bytes(rng, rng.int(8));
          out.push(frame(type, flags, id, payload));
        }
      }
      const wire = Buffer.concat(out);
      const frames = await new Promise<Buffer>((resolve) => {
        const got: Buffer[] = [];
        const socket = connectTcp(port, '127.0.0.1', () => {
          // Sometimes in pieces: frames split across reads.
          if (rng.chance(0.3)) {
            for (let at = 0; at < wire.length; at += 7) socket.write(wire.subarray(at, at + 7));
          } else socket.write(wire);
          setTimeout(() => socket.end(), 30);
        });
        socket.on('data', (d: Buffer) => got.push(d));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(Buffer.concat(got)));
      });
      // Every frame the server sent is whole, and answers only streams the client opened.
      let at = 0;
      while (at < frames.length) {
        assert.ok(frames.length - at >= 9, `seed ${SEED}, connection ${c}: a cut frame header`);
        const length = frames.readUIntBE(at, 3);
        const type = frames[at + 3] as number;
        const stream = frames.readUInt32BE(at + 5) & 0x7fffffff;
        assert.ok(at + 9 + length <= frames.length, `seed ${SEED}, connection ${c}: a cut frame`);
        if (type === 0 || type === 1) assert.ok(opened.has(stream), `seed ${SEED}, connection ${c}: an answer on stream ${stream}, which the client never opened`);
        at += 9 + length;
      }
    }
    await new Promise((r) => setTimeout(r, 20));
    const client = new Client(address, credentials.createInsecure());
    try {
      assert.equal((await unaryBytes(client, '/t.T/Echo', Buffer.from('alive'))).toString(), 'alive');
    } finally {
      client.close();
    }
  });
});
