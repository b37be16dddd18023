// Where a Check's CPU goes under load, layer by layer: servers that each add one layer of
// Mandate to the one before (a bare node:http2 answer for reference, our gRPC server, decoding the
// CheckRequest, the whole pipeline, metrics, the decision log), `mandate serve` itself and the
// grpc-js no-op, each in its own process, driven in turn by h2load; for each, the CPU time its
// threads spent per call, read from /proc/<pid>/task/*/stat around the run.
//
// CPU time rather than profiler samples: on a machine with as many cores as busy threads (h2load
// on one, the server's main thread on the other), a sampling profiler also counts the time the
// main thread waited for a core, spread over whatever it was running. And under load, rather
// than in a loop: code run once between other work costs two to three times what it costs in a
// loop (docs/performance.md, session of stop 23).
//   node dist/bench/layers.js [--rounds N] [--seconds N] [--in-flight N] [--policies N] [--out FILE] [--smoke]
// Linux only (/proc); needs h2load (apt-get install nghttp2-client).

import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { decide, decideNow } from '../src/check/pipeline.js';
import type { Decision } from '../src/core/decision.js';
import { AllowFrames } from '../src/server/frames.js';
import { respond } from '../src/check/respond.js';
import { median } from './stats.js';
import { encodeCheckResponseFrame } from '../src/server/codec.js';
import { GrpcServer } from '../src/server/grpc-server.js';
import { AUTHORIZATION_SERVICE_SERVED, decodeCheckRequestBytes } from '../src/server/protos.js';
import { DecisionLog } from '../src/telemetry/decision-log.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import type { CheckRequestMessage } from '../src/check/decode.js';
import type { ServerCall, UnaryCallback } from '../src/server/grpc-server.js';
import { expectAllowed, startMandate, startProcess, startScenarioTask, writeGrpcFrame } from './harness.js';
import { startScenarioInProcess } from './scenario-in-process.js';
import { EXAMPLE_POLICIES, writeScenario } from './scenario.js';

/** The layers, each adding one thing to the one before. */
const LAYERS = {
  http2: 'bare node:http2, a constant gRPC answer',
  grpc: 'our gRPC server (grpc-server.ts over http2.ts), a constant answer, the request not decoded',
  decode: '+ decoding the CheckRequest (codec.ts)',
  decide: '+ the pipeline and the answer (decide, respond, encode)',
  metrics: '+ metrics (telemetry.recordDecision)',
  log: '+ the decision log (to /dev/null)',
} as const;
type Layer = keyof typeof LAYERS;

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    body: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    'in-flight': { type: 'string' },
    policies: { type: 'string' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const policies = Number(values.policies ?? (values.smoke ? 100 : 1000));

if (values.serve !== undefined) await serve(values.serve as Layer);
else await measure();

/** One layer's server in this process: writes the request (with this process's task token) to --body, prints {"address"} once listening. */
async function serve(layer: Layer): Promise<void> {
  if (!(layer in LAYERS)) throw new Error(`unknown layer ${layer}`);
  const { state, bytes } = await startScenarioInProcess(policies);
  const first = await decide(decodeCheckRequestBytes(bytes) as CheckRequestMessage, state);
  if (!first.allowed) throw new Error(`the scenario request is not allowed: ${first.code}`);
  const constant = respond(first, state.config);
  // The request carries this process's task token: h2load's body is written here.
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  bytes.copy(frame, 5);
  writeFileSync(values.body as string, frame);
  const listening = (port: number): void => {
    process.stdout.write(`${JSON.stringify({ address: `127.0.0.1:${port}` })}\n`);
  };
  process.on('SIGTERM', () => process.exit(0));
  if (layer === 'http2') {
    const answer = encodeCheckResponseFrame(constant);
    const server = createH2Server({ settings: { maxConcurrentStreams: 1000 } });
    server.on('stream', (stream) => {
      stream.on('data', () => {});
      stream.on('end', () => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(answer);
      });
    });
    server.listen(0, '127.0.0.1', () => listening((server.address() as { port: number }).port));
    return;
  }
  const telemetry = layer === 'metrics' || layer === 'log' ? new Telemetry({}, { env: {} }) : null;
  const log = layer === 'log' ? DecisionLog.open({ sink: '/dev/null', maxBufferBytes: 1 << 20, includeInput: false, allowSampleRate: 1, maxFileBytes: Number.MAX_SAFE_INTEGER, maxFiles: 2, redactHeaders: [] }) : null;
  const definition = { ...AUTHORIZATION_SERVICE_SERVED, Check: { ...(AUTHORIZATION_SERVICE_SERVED['Check'] as NonNullable<(typeof AUTHORIZATION_SERVICE_SERVED)['Check']>) } };
  if (layer === 'grpc') definition.Check.requestDeserialize = () => ({});
  const frames = new AllowFrames(state.config);
  const server = new GrpcServer({ maxMessageBytes: 4 << 20, maxConcurrentStreams: 1000 });
  server.addService(definition, {
    Check: (call: ServerCall<CheckRequestMessage>, callback: UnaryCallback<unknown>) => {
      if (layer === 'grpc' || layer === 'decode') {
        callback(null, constant);
        return undefined;
      }
      const started = process.hrtime.bigint();
      // As the server decides and answers (server.ts): decideNow, the allowed answer's template.
      const finish = (decision: Decision): void => {
        if (!decision.allowed) {
          // A deny costs less than the decision measured: the run is void (the parent sees the exit).
          process.stderr.write(`layer ${layer}: the scenario request was denied (${decision.code})\n`);
          process.exit(3);
        }
        callback(null, frames.answer(decision));
        const latencyUs = Number(process.hrtime.bigint() - started) / 1000;
        telemetry?.recordDecision(decision, latencyUs, null);
        log?.record(decision, latencyUs);
      };
      const decided = decideNow(call.request, state, Date.now(), call.getDeadline());
      if (decided instanceof Promise) return decided.then(finish);
      finish(decided);
      return undefined;
    },
  });
  const listener = createNetServer((socket) => server.injectConnection(socket));
  listener.listen(0, '127.0.0.1', () => listening((listener.address() as { port: number }).port));
}

interface Target {
  readonly name: string;
  readonly what: string;
  readonly child: ChildProcess;
  readonly address: string;
  readonly body: string;
}

/** CPU time (user + system, clock ticks) of each thread of a process; the main thread's id is the pid. */
function threadTicks(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    // Fields after the parenthesized name: state is field 3, utime 14, stime 15.
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (Number(tid) === pid) main += ticks;
    else others += ticks;
  }
  return { main, others };
}

async function measure(): Promise<void> {
  if (spawnSync('h2load', ['--version']).error) {
    process.stderr.write('h2load not found: apt-get install nghttp2-client\n');
    process.exit(1);
  }
  const rounds = Number(values.rounds ?? (values.smoke ? 1 : 3));
  const seconds = Number(values.seconds ?? (values.smoke ? 1 : 4));
  const warmup = values.smoke ? 1 : 3;
  const inFlight = Number(values['in-flight'] ?? 64);
  const out = values.out ?? resolve(kPackageRoot, 'bench/results/layers.md');
  const ticksPerSecond = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
  const dir = mkdtempSync(join(tmpdir(), 'mandate-layers-'));
  const script = resolve(kPackageRoot, 'dist/bench/layers.js');
  const ADDRESS = /"address":"([^"]+)"/;
  const targets: Target[] = [];
  try {
    for (const layer of Object.keys(LAYERS) as Layer[]) {
      const body = join(dir, `${layer}.bin`);
      const { child, address } = await startProcess([script, '--serve', layer, '--policies', String(policies), '--body', body], ADDRESS, 'stdout');
      targets.push({ name: layer, what: LAYERS[layer], child, address, body });
    }
    const scenario = writeScenario(policies - EXAMPLE_POLICIES);
    const config = join(scenario.dir, 'mandate-inline.yaml');
    writeFileSync(config, `${readFileSync(scenario.config, 'utf8')}\nevaluation:\n  mode: inline\n`);
    const mandate = await startMandate(config);
    const body = join(dir, 'serve.bin');
    targets.push({ name: 'serve', what: '`mandate serve` (the Check handler, metrics, the decision log to /dev/null)', child: mandate.child, address: mandate.address, body });
    const serveRequest = await startScenarioTask(mandate.address, scenario);
    writeGrpcFrame(body, serveRequest);
    const noop = await startProcess([resolve(kPackageRoot, 'dist/bench/noop-server.js')], ADDRESS, 'stdout');
    targets.push({ name: 'noop', what: 'the grpc-js no-op (the load benchmark\'s baseline)', child: noop.child, address: noop.address, body });

    const clients = Math.min(4, inFlight);
    const h2load = (t: Target, runSeconds: number) =>
      spawnSync('h2load', [
        `http://${t.address}/envoy.service.auth.v3.Authorization/Check`,
        '-c', String(clients), '-m', String(Math.max(1, Math.round(inFlight / clients))), '-t', '1', '-D', String(runSeconds),
        '-d', t.body, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
      ], { encoding: 'utf8' });
    // Warm-up, not measured: V8 compiles the hot path in the first seconds of load (its helper
    // threads' CPU then dwarfs the main thread's).
    for (const t of targets) h2load(t, warmup);
    const results = new Map<string, { main: number; others: number; rps: number }[]>();
    for (let round = 0; round < rounds; round++) {
      // Each round in another order, so that drift does not favour one server.
      const order = targets.map((_, k) => targets[(k + round) % targets.length] as Target);
      for (const t of order) {
        const pid = t.child.pid as number;
        const before = threadTicks(pid);
        const run = h2load(t, seconds);
        const after = threadTicks(pid);
        if (t.child.exitCode !== null) throw new Error(`${t.name} exited during its run (code ${t.child.exitCode}): a layer server exits on a deny`);
        const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(run.stdout)?.[1] ?? 0);
        if (done === 0) throw new Error(`h2load against ${t.name}: no request done\n${run.stdout}${run.stderr}`);
        const perCall = (ticks: number): number => (ticks * 1e6) / ticksPerSecond / done;
        const list = results.get(t.name) ?? [];
        list.push({ main: perCall(after.main - before.main), others: perCall(after.others - before.others), rps: Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(run.stdout)?.[1] ?? 0) });
        results.set(t.name, list);
      }
    }
    await expectAllowed(mandate.address, serveRequest, 'mandate serve: the scenario request was no longer allowed at the end of the run');
    const lines = [
      `# CPU per Check under load, layer by layer (${new Date().toISOString()}, Node ${process.version})`,
      '',
      `Scenario: ${policies} policies, JWT-SVID caller, task token; h2load ${inFlight} in flight, ${seconds} s per server per round, ${rounds} round(s), after ${warmup} s of warm-up each.`,
      'CPU time per call of the server process from /proc (user + system): its main thread, and its other threads (V8 helpers, libuv).',
      'Each layer server adds one thing to the one above it; `serve` is `mandate serve` itself.',
      '',
      '| server | what | main thread µs per call (median) | each round | other threads µs per call | req/s (median) |',
      '| --- | --- | ---: | --- | ---: | ---: |',
    ];
    for (const t of targets) {
      const r = results.get(t.name) ?? [];
      lines.push(`| ${t.name} | ${t.what} | ${median(r.map((x) => x.main)).toFixed(1)} | ${r.map((x) => x.main.toFixed(1)).join(', ')} | ${median(r.map((x) => x.others)).toFixed(1)} | ${Math.round(median(r.map((x) => x.rps)))} |`);
    }
    writeFileSync(out, `${lines.join('\n')}\n`);
    process.stdout.write(`${lines.join('\n')}\nwrote ${out}\n`);
  } finally {
    for (const t of targets) t.child.kill('SIGTERM');
  }
}
