// A real redis-server for the tests, on a free loopback port, started and stopped by the test
// itself so that `npm test` stays the only command. Append-only persistence is on, so a test
// can kill Redis and start it again with its data. The file is written before every reply but
// not fsynced (appendfsync no): a killed process loses nothing (the kernel keeps what was
// written), and a write never waits on the disk. With `always`, one fsync on a busy CI disk took
// longer than the store's 100 ms command timeout and a test's first StartTask failed.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RedisProcess {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data directory. */
  restart(): Promise<void>;
  /** Sends a signal to redis-server: SIGSTOP hangs it (connections stay open, nothing answers), SIGCONT resumes it. */
  signal(name: NodeJS.Signals): void;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolvePort(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolvePing) => {
    const s = new Socket();
    s.setTimeout(200);
    s.once('error', () => resolvePing(false));
    s.once('timeout', () => {
      s.destroy();
      resolvePing(false);
    });
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolvePing(d.toString().startsWith('+PONG'));
    });
  });
}

export async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mandate-redis-'));
  let child: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'no', '--save', ''], { stdio: 'ignore' });
    child.on('error', (err) => {
      throw new Error(`cannot start redis-server (is it installed? .ci/run installs it): ${err.message}`);
    });
    for (let i = 0; i < 100; i++) {
      if (await ping(port)) return;
      await sleep(50);
    }
    throw new Error(`redis-server did not answer on port ${port}`);
  };
  const stop = async (): Promise<void> => {
    const c = child as ChildProcess | null;
    if (c === null || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
    child = null;
  };
  await launch();
  const signal = (name: NodeJS.Signals): void => {
    (child as ChildProcess | null)?.kill(name);
  };
  return { url: `redis://127.0.0.1:${port}`, port, stop, restart: launch, signal };
}
