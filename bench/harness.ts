// What the end-to-end benchmarks (load.ts, soak.ts, profile.ts) share: starting a server in its
// own process, starting the scenario's task on a running Mandate, and the request body h2load
// sends.

import { spawn, type ChildProcess } from 'node:child_process';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { credentials, makeClientConstructor, Metadata, type Client } from '@grpc/grpc-js';
import { kPackageRoot } from '../src/package-root.js';
import { AUTHORIZATION_SERVICE, encodeCheckRequest, TASKS_SERVICE } from '../src/server/protos.js';
import { SCENARIO_TASK, type Scenario } from './scenario.js';

export const MANDATE_LISTENING = /"msg":"listening","address":"([^"]+)"/;

/** Starts `node ...args` and waits for `match` (first group: the address; `groups`: all of them) on one of its streams. */
export function startProcess(args: string[], match: RegExp, stream: 'stdout' | 'stderr', timeoutMs = 120_000, env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; address: string; groups: string[] }> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', stream === 'stdout' ? 'pipe' : 'ignore', stream === 'stderr' ? 'pipe' : 'ignore'] });
  return new Promise((resolveStart, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`did not start: ${args.join(' ')}\n${text}`)), timeoutMs);
    child[stream]?.on('data', (c: Buffer) => {
      text += c.toString();
      const m = match.exec(text);
      if (m) {
        clearTimeout(timer);
        resolveStart({ child, address: m[1] as string, groups: m.slice(1) as string[] });
      }
    });
  });
}

/** `mandate serve` with a config, on a free port, admin off; `nodeArgs` go before the script. */
export function startMandate(config: string | null, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<{ child: ChildProcess; address: string }> {
  const configArgs = config === null ? [] : ['--config', config];
  return startProcess([...nodeArgs, resolve(kPackageRoot, 'dist/src/main.js'), 'serve', ...configArgs, '--listen', '127.0.0.1:0', '--admin-listen', 'off'], MANDATE_LISTENING, 'stderr', 120_000, env);
}

const MANDATE_LISTENING_WITH_ADMIN = /"msg":"listening","address":"([^"]+)","admin":"([^"]+)"/;

/** `mandate serve` as startMandate, with its admin port on a free loopback port (for /v1/status). */
export async function startMandateWithAdmin(config: string | null): Promise<{ child: ChildProcess; address: string; admin: string }> {
  const configArgs = config === null ? [] : ['--config', config];
  const started = await startProcess([resolve(kPackageRoot, 'dist/src/main.js'), 'serve', ...configArgs, '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], MANDATE_LISTENING_WITH_ADMIN, 'stderr');
  return { child: started.child, address: started.address, admin: started.groups[1] as string };
}

/** Evaluations by where they ran, from a running Mandate's /v1/status. */
export async function evaluationCounts(admin: string): Promise<{ compiled: number; wasmInline: number; wasmPool: number }> {
  const res = await fetch(`http://${admin}/v1/status`);
  if (!res.ok) throw new Error(`/v1/status answered ${res.status}`);
  const status = (await res.json()) as { evaluations?: { compiled: number; wasmInline: number; wasmPool: number } };
  if (status.evaluations === undefined) throw new Error('/v1/status has no evaluation counts');
  return status.evaluations;
}

/** gRPC framing for h2load's body file: 1 byte "not compressed", 4 bytes big-endian length, the message. */
export function writeGrpcFrame(file: string, request: unknown): void {
  const message = encodeCheckRequest(request);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  writeFileSync(file, frame);
}

/**
 * Starts the scenario's task on a running Mandate, checks that the scenario's request is allowed
 * with its token (a benchmark of denies would measure the wrong thing), and returns the request.
 */
export async function startScenarioTask(address: string, s: Scenario): Promise<unknown> {
  const Tasks = makeClientConstructor(TASKS_SERVICE, 'mandate.tasks.v1.Tasks');
  const tasks = new Tasks(address, credentials.createInsecure()) as Client & Record<string, GrpcMethod>;
  const unary = (client: Record<string, GrpcMethod>, method: string, request: unknown, metadata: Metadata): Promise<Record<string, unknown>> =>
    new Promise((ok, fail) => (client[method] as GrpcMethod).call(client, request, metadata, (err: Error | null, res: Record<string, unknown>) => (err ? fail(err) : ok(res))));
  try {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${s.jwtSvid}`);
    const started = await unary(tasks, 'StartTask', SCENARIO_TASK, metadata);
    const request = s.checkRequest(String(started['token']));
    await expectAllowed(address, request, 'the scenario request is not allowed');
    return request;
  } finally {
    tasks.close();
  }
}

/**
 * Asks Mandate to decide `request` once and throws unless it is allowed: before a run, and after
 * it (a token that expired during the run would have turned the rest of it into cheaper denies).
 */
export async function expectAllowed(address: string, request: unknown, what: string): Promise<void> {
  const Authorization = makeClientConstructor(AUTHORIZATION_SERVICE, 'envoy.service.auth.v3.Authorization');
  const check = new Authorization(address, credentials.createInsecure()) as Client & Record<string, GrpcMethod>;
  try {
    const answer = await new Promise<Record<string, unknown>>((ok, fail) =>
      (check['Check'] as GrpcMethod).call(check, request, new Metadata(), (err: Error | null, res: Record<string, unknown>) => (err ? fail(err) : ok(res))),
    );
    if ((answer['status'] as { code?: number } | undefined)?.code !== 0) throw new Error(`${what}: ${JSON.stringify(answer)}`);
  } finally {
    check.close();
  }
}
