// Resource limits on the Check port (issue #12 §4), tried the way an attacker who reaches the
// port would, with raw HTTP/2: an oversized message is refused as soon as its length prefix
// arrives (nothing is buffered), half-sent messages cannot pile up, streams per connection and
// connections are capped, and legitimate decisions keep flowing throughout.

import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { checkRequest, SUPPORT_AGENT } from '../helpers/requests.js';
import { exampleWith, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

function session(address: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = connect(`http://${address}`);
    s.once('remoteSettings', () => resolve(s));
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before SETTINGS')));
  });
}

/** Closes sessions and waits until their sockets are gone (the server counts open connections). */
async function closeAll(sessions: ClientHttp2Session[]): Promise<void> {
  await Promise.all(sessions.map((x) => (x.closed && x.destroyed ? Promise.resolve() : new Promise<void>((r) => {
    x.once('close', () => r());
    x.destroy();
  }))));
  await new Promise((r) => setTimeout(r, 50));
}

/** Opens a Check stream that announces a `declared`-byte message and sends `sent` bytes of it. */
function halfSend(s: ClientHttp2Session, declared: number, sent: number): Promise<{ grpcStatus: string | null; ms: number }> {
  const started = Date.now();
  const stream = s.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(declared, 1);
  stream.write(Buffer.concat([prefix, Buffer.alloc(sent - 5, 0x41)]));
  return new Promise((resolve) => {
    // The server's answer ends its side of the stream; ours stays open (the message is never
    // finished), so the answer itself, not the stream's close, is what is awaited.
    const take = (headers: Record<string, unknown>) => {
      if (headers['grpc-status'] === undefined) return;
      resolve({ grpcStatus: String(headers['grpc-status']), ms: Date.now() - started });
      stream.close(constants.NGHTTP2_CANCEL);
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('data', () => undefined);
    stream.on('close', () => resolve({ grpcStatus: null, ms: Date.now() - started }));
    stream.on('error', () => undefined);
  });
}

describe('Check port resource limits', () => {
  let running: RunningServer;
  before(async () => {
    const { config } = exampleWith({ limits: 'limits:\n  maxBodyBytes: 8192\n  maxMessageBytes: 65536\n  maxConcurrentStreams: 8\n  maxConnections: 3\n' });
    running = await startExampleServer(config);
  });
  after(async () => running.close());

  const legitimate = async (): Promise<number> => {
    const client = createCheckClient(running.address);
    try {
      return (await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }))).status?.code ?? 0;
    } finally {
      client.close();
    }
  };

  it('refuses a message over limits.maxMessageBytes with RESOURCE_EXHAUSTED from its length prefix alone', async () => {
    const s = await session(running.address);
    try {
      // 3.9 MB announced, 1 KB sent: the answer comes without the rest ever being sent.
      const r = await halfSend(s, 3_900_000, 1024);
      assert.equal(r.grpcStatus, String(8));
    } finally {
      await closeAll([s]);
    }
    assert.equal(await legitimate(), 0);
  });

  it('refuses a whole CheckRequest over the limit from a real gRPC client, and keeps serving', async () => {
    const client = createCheckClient(running.address);
    try {
      await assert.rejects(client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { 'x-big': 'v'.repeat(100 * 1024) } })), (e: { code?: number }) => e.code === 8);
    } finally {
      client.close();
    }
    assert.equal(await legitimate(), 0);
  });

  it('advertises limits.maxConcurrentStreams to every connection', async () => {
    const s = await session(running.address);
    try {
      assert.equal(s.remoteSettings.maxConcurrentStreams, 8);
    } finally {
      await closeAll([s]);
    }
  });

  it('closes connections past limits.maxConnections at once, and takes new ones when one closes', async () => {
    const held: ClientHttp2Session[] = [];
    let refused: unknown = null;
    try {
      // At most 3 (fewer if an earlier test's connection is still closing), then a refusal.
      for (let i = 0; i < 4 && refused === null; i++) {
        await session(running.address).then((x) => held.push(x), (err: unknown) => (refused = err));
      }
      assert.match(String(refused), /closed before SETTINGS|ECONNRESET/);
      assert.ok(held.length >= 1 && held.length <= 3, `${held.length} connections were accepted`);
      await closeAll(held.splice(0, 1));
      assert.equal(await legitimate(), 0);
    } finally {
      await closeAll(held);
    }
  });

  it('keeps answering while half-sent messages under the limit hold streams open', async () => {
    const s = await session(running.address);
    const pending: ReturnType<typeof halfSend>[] = [];
    try {
      for (let i = 0; i < 8; i++) pending.push(halfSend(s, 60_000, 30_000));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await legitimate(), 0);
    } finally {
      await closeAll([s]); // destroying the session resets the half-sent streams
    }
    await Promise.all(pending);
    assert.equal(await legitimate(), 0);
  });
});
