// Starts real Mandate servers for tests: in process on 127.0.0.1:0, or as a child process.

import { credentials, makeClientConstructor, type Client } from '@grpc/grpc-js';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadRuntime, type Runtime } from '../../src/cli/runtime.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import { kPackageRoot } from '../../src/package-root.js';
import { HEALTH_SERVICE } from '../../src/server/protos.js';
import { startServer, type MandateServer } from '../../src/server/server.js';
import { createLogger } from '../../src/telemetry/log.js';
import type { Telemetry } from '../../src/telemetry/telemetry.js';

export const MAIN_JS = resolve(kPackageRoot, 'dist/src/main.js');
export const EXAMPLE_DIR = resolve(kPackageRoot, 'examples/agent-gateway');
export const REQUESTS_DIR = resolve(kPackageRoot, 'examples/requests');

export interface RunningServer {
  readonly server: MandateServer;
  readonly runtime: Runtime;
  readonly address: string;
  close(): Promise<void>;
}

export async function startExampleServer(configFile = EMBEDDED_CONFIG, telemetry: Telemetry | null = null): Promise<RunningServer> {
  const runtime = loadRuntime(configFile, { listen: '127.0.0.1:0', mode: 'serve' });
  await runtime.bundles.start();
  const { shadow: _shadowStore, ...parts } = runtime;
  const server = await startServer({ ...parts, telemetry, logger: createLogger('silent') });
  return { server, runtime, address: server.address, close: async () => {
    runtime.bundles.stop();
    await server.shutdown(1000);
    runtime.workloadApi?.close();
    await runtime.tasks?.store.close();
  } };
}

/** A private copy of the example, so a test can edit policies without touching the repo. */
export function copyExample(): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-example-'));
  // Not the task keys a local `npm start` may have left in the example: every copy starts clean.
  cpSync(EXAMPLE_DIR, dir, { recursive: true, filter: (src) => !src.split('/').includes('.mandate') });
  return { dir, config: join(dir, 'mandate.yaml') };
}

/**
 * Removes the pin from the MCP route of an example copy (its `tools: ./support-tools.json`): for
 * tests of what an unpinned route decides, as a user who does not pin gets it.
 */
export function unpinExample(dir: string): void {
  const config = join(dir, 'mandate.yaml');
  const yaml = readFileSync(config, 'utf8');
  const unpinned = yaml.replace('protocol: mcp, server: support, tools: ./support-tools.json }', 'protocol: mcp, server: support }');
  if (unpinned === yaml) throw new Error('the example no longer pins its MCP route where unpinExample expects it');
  writeFileSync(config, unpinned);
}

export function exampleRequests(): { name: string; request: unknown }[] {
  return readdirSync(REQUESTS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => ({ name, request: JSON.parse(readFileSync(join(REQUESTS_DIR, name), 'utf8')) as unknown }));
}

const HealthClient = makeClientConstructor(HEALTH_SERVICE, 'grpc.health.v1.Health');

export interface HealthClientHandle {
  check(service?: string): Promise<number>;
  watch(service: string, onStatus: (status: number) => void): { end: Promise<void>; cancel(): void };
  close(): void;
}

export function createHealthClient(address: string): HealthClientHandle {
  const client = new HealthClient(address, credentials.createInsecure()) as Client & Record<string, GrpcMethod>;
  return {
    check: (service = '') =>
      new Promise((res, rej) => {
        (client['Check'] as GrpcMethod).call(client, { service }, { deadline: new Date(Date.now() + 5000) }, (err: Error | null, r: { status: number }) =>
          err ? rej(err) : res(r.status),
        );
      }),
    watch: (service, onStatus) => {
      const call = (client['Watch'] as GrpcMethod).call(client, { service }) as NodeJS.EventEmitter & { cancel(): void };
      call.on('data', (r: { status: number }) => onStatus(r.status));
      const end = new Promise<void>((res) => {
        call.on('end', () => res());
        call.on('error', () => res());
      });
      return { end, cancel: () => call.cancel() };
    },
    close: () => client.close(),
  };
}

export interface ChildServer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly address: string;
  readonly stderr: () => string;
  readonly stdout: () => string;
  readonly exited: Promise<number | null>;
}

/** Runs `mandate serve` in a child process and waits for its "listening" log line. */
export function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}, options = { listenFlag: true }): Promise<ChildServer> {
  const listen = options.listenFlag ? ['--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'] : ['--admin-listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, [MAIN_JS, 'serve', ...listen, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => rejectStart(new Error(`server did not start:\n${err}`)), 15_000);
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      const match = /"msg":"listening","address":"([^"]+)"/.exec(err);
      if (match !== null) {
        clearTimeout(timer);
        resolveStart({ child, address: match[1] as string, stderr: () => err, stdout: () => out, exited });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rejectStart(new Error(`server exited with ${code} before listening:\n${err}`));
    });
  });
}

/** Runs the CLI to completion. */
export function runCli(args: string[], input?: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => res({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/**
 * A private copy of the example whose top-level sections named in `replace` (YAML text, each
 * starting with its key, e.g. "identity:\n  ...") replace the example's own.
 */
export function exampleWith(replace: Record<string, string>, files: Record<string, string> = {}): { dir: string; config: string } {
  const { dir, config } = copyExample();
  let yaml = readFileSync(config, 'utf8');
  for (const [key, section] of Object.entries(replace)) {
    yaml = yaml.replace(new RegExp(`^${key}:\\n(?:(?:  .*)?\\n)*?(?=^\\S|$(?![\\s\\S]))`, 'm'), '');
    yaml = `${yaml.trimEnd()}\n\n${section.trimEnd()}\n`;
  }
  writeFileSync(config, yaml);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, config };
}
