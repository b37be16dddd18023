// End-to-end load: Mandate and a no-op ext_authz server (bench/noop-server.ts), each in its own
// process, driven by h2load (Debian package nghttp2-client) over HTTP/2 with a real gRPC
// CheckRequest, at several numbers of requests in flight, alternating the two servers at each
// level so machine drift hits both alike. Reports throughput and p50/p90/p99/p99.9 latency,
// and Mandate's ratio to the no-op measured in the same run.
// By default the scenario of issue #5: the example grown to 1,000 policies, a caller identified
// by a JWT-SVID and running inside a task (bench/scenario.ts); --policies N changes the count,
// --request FILE sends a fixed CheckRequest to the plain example instead.
// Mandate runs once per evaluation mode asked for (--modes inline,pool,auto: all three by
// default), all servers in rotating order at each level.
// Each level is run in rounds (--rounds, 3 by default): every server for --seconds in turn,
// order rotated, then again. A throughput ratio is taken within a round (Mandate's window
// against the no-op's window next to it) and the median over the rounds is reported, with the
// lowest and highest: one window per server moved the ratio by ±0.2 on this shared machine.
//   node dist/bench/load.js [--seconds N] [--rounds N] [--warm-seconds N] [--smoke] [--policies N] [--modes inline,pool,auto] [--request FILE] [--out FILE]

import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { writeScenario, EXAMPLE_POLICIES } from './scenario.js';
import { evaluationCounts, expectAllowed, startMandateWithAdmin, startProcess, startScenarioTask, writeGrpcFrame } from './harness.js';
import { renderLatencyChart } from './chart.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string' }, rounds: { type: 'string' }, 'warm-seconds': { type: 'string' }, smoke: { type: 'boolean', default: false }, request: { type: 'string' }, policies: { type: 'string' }, modes: { type: 'string' }, out: { type: 'string' } },
});
const seconds = Number(values.seconds ?? (values.smoke ? 1 : 2));
const rounds = Number(values.rounds ?? (values.smoke ? 2 : 3));
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds: a positive integer');
const warmup = values.smoke ? 0 : 1;
/**
 * Before the levels, every server is driven at 64 in flight for this long: what is compared is
 * the servers' steady state. V8 kept optimizing Mandate's code for the first ~15 s of load
 * (main-thread CPU per call over 4 s windows from a fresh start: 237, 181, 174, then 117-150 µs),
 * which a first window per level would charge to the throughput. Start-up is `bench:startup`'s.
 */
const warmSeconds = Number(values['warm-seconds'] ?? (values.smoke ? 0 : 15));
const out = values.out ?? resolve(kPackageRoot, 'bench/results/load.json');
// [clients, streams per client]: in flight = clients * streams.
const LEVELS: [number, number][] = [[1, 1], [4, 4], [4, 16], [8, 32]];

if (spawnSync('h2load', ['--version']).error) {
  process.stderr.write('h2load not found: apt-get install nghttp2-client\n');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'mandate-load-'));
const scenario = values.request === undefined ? writeScenario(Number(values.policies ?? 1000) - EXAMPLE_POLICIES) : null;
const requestFile = values.request ?? null;
type Mode = 'inline' | 'pool' | 'auto';
const modes = (values.modes ?? 'inline,pool,auto').split(',').map((m) => m.trim()) as Mode[];
if (modes.length === 0 || modes.some((m) => m !== 'inline' && m !== 'pool' && m !== 'auto')) throw new Error('--modes: a list of inline, pool, auto');
type ServerName = 'noop' | 'mandate' | 'mandate-pool' | 'mandate-auto';
const nameOf = (mode: Mode): ServerName => (mode === 'inline' ? 'mandate' : mode === 'pool' ? 'mandate-pool' : 'mandate-auto');

interface LevelResult {
  server: ServerName;
  inFlight: number;
  /** The round of its level (0 for the half-peak runs). */
  round: number;
  requests: number;
  /** Requests h2load logged with status 0: cut by the warm-up or duration boundary, not answered in the window. */
  incomplete: number;
  rps: number;
  p50us: number;
  p90us: number;
  p99us: number;
  p999us: number;
  /** Every answered call's latency (µs), sorted: merged over the rounds of a level. */
  latencies: Float64Array;
}

function drive(server: ServerName, address: string, bodyFile: string, clients: number, streams: number, round = 0): LevelResult {
  const log = join(dir, `${server}-${clients}x${streams}-${round}.log`);
  const args = [
    `http://${address}/envoy.service.auth.v3.Authorization/Check`,
    '-c', String(clients), '-m', String(streams), '-t', '1',
    '-D', String(seconds), ...(warmup > 0 ? ['--warm-up-time', String(warmup)] : []),
    '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    '--log-file', log,
  ];
  const run = spawnSync('h2load', args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`h2load failed: ${run.stderr || run.stdout}`);
  const all = readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);
  // Every answered gRPC call is HTTP 200 (a deny or a gRPC error included); status 0 means cut.
  const lines = all.filter((l) => l.split('\t')[1] === '200');
  const latencies = Float64Array.from(lines.map((l) => Number(l.split('\t')[2]))).sort();
  const incomplete = all.length - lines.length;
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(run.stdout)?.[1] ?? 0);
  return { server, inFlight: clients * streams, round, requests: lines.length, incomplete, rps: Math.round(rps), p50us: at(0.5), p90us: at(0.9), p99us: at(0.99), p999us: at(0.999), latencies };
}

const servers = new Map<ServerName, { child: ChildProcess; address: string; bodyFile: string }>();
/** The scenario's request per Mandate server, allowed when the run starts (startScenarioTask) and checked again after it. */
const scenarioRequests = new Map<ServerName, unknown>();
/** Each Mandate's admin address: its /v1/status counts evaluations by where they ran. */
const admins = new Map<ServerName, string>();
try {
  for (const mode of modes) {
    let config: string | null = null;
    if (scenario !== null) {
      config = join(scenario.dir, `mandate-${mode}.yaml`);
      writeFileSync(config, `${readFileSync(scenario.config, 'utf8')}\nevaluation:\n  mode: ${mode}\n`);
    } else if (mode !== 'inline') {
      throw new Error('--request runs the embedded example, inline only: use --modes inline');
    }
    const server = await startMandateWithAdmin(config);
    const bodyFile = join(dir, `check-${mode}.bin`);
    servers.set(nameOf(mode), { ...server, bodyFile });
    admins.set(nameOf(mode), server.admin);
    const request = scenario !== null ? await startScenarioTask(server.address, scenario) : JSON.parse(readFileSync(requestFile as string, 'utf8'));
    if (scenario !== null) scenarioRequests.set(nameOf(mode), request);
    writeGrpcFrame(bodyFile, request);
  }
  const noop = await startProcess([resolve(kPackageRoot, 'dist/bench/noop-server.js')], /"address":"([^"]+)"/, 'stdout');
  servers.set('noop', { ...noop, bodyFile: (servers.values().next().value as { bodyFile: string }).bodyFile });
} catch (err) {
  for (const s of servers.values()) s.child.kill('SIGTERM');
  throw err;
}
const results: LevelResult[] = [];
/** Per Mandate, its evaluations over the whole run by where they ran (issue #14: >= 99% compiled). */
const served: { server: ServerName; compiled: number; wasmInline: number; wasmPool: number; compiledShare: number }[] = [];
const halfPeak: (LevelResult & { mode: Mode; peak: number })[] = [];
/** Clients x streams tried to find the in-flight count at half of the peak: 2, 4 and 8 (between LEVELS' 1 and 16). */
const HALF_PEAK_LEVELS: [number, number][] = [[2, 1], [4, 1], [4, 2]];
try {
  const names = [...servers.keys()];
  if (warmSeconds > 0) {
    for (const name of names) {
      const s = servers.get(name) as { address: string; bodyFile: string };
      const warm = spawnSync('h2load', [`http://${s.address}/envoy.service.auth.v3.Authorization/Check`, '-c', '4', '-m', '16', '-t', '1', '-D', String(warmSeconds), '-d', s.bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers'], { encoding: 'utf8' });
      if (warm.status !== 0) throw new Error(`h2load (warm-up) failed: ${warm.stderr || warm.stdout}`);
    }
  }
  for (const [i, [clients, streams]] of LEVELS.entries()) {
    for (let round = 0; round < rounds; round++) {
      // Rotate the order at each level and round so that drift does not always favour the same server.
      const order = names.map((_, k) => names[(k + i + round) % names.length] as ServerName);
      for (const name of order) {
        const s = servers.get(name) as { address: string; bodyFile: string };
        results.push(drive(name, s.address, s.bodyFile, clients, streams, round));
      }
    }
  }
  // Target 3 of the issue: p99 at half of each Mandate mode's peak (its best throughput over the
  // levels above). h2load's fixed-rate mode (--rps) sends in bursts (the no-op itself showed a
  // p99 of 4-9 ms at 1,200-2,300 req/s), so instead a closed loop at the number in flight whose
  // throughput comes closest to half of the peak, and the no-op at that number beside it.
  for (const mode of modes) {
    const name = nameOf(mode);
    const peak = Math.max(...results.filter((r) => r.server === name).map((r) => r.rps));
    const s = servers.get(name) as { address: string; bodyFile: string };
    const tries = HALF_PEAK_LEVELS.map(([c, m]) => ({ c, m, result: drive(name, s.address, s.bodyFile, c, m) }));
    const best = tries.reduce((a, b) => (Math.abs(b.result.rps - peak / 2) < Math.abs(a.result.rps - peak / 2) ? b : a));
    const noopServer = servers.get('noop') as { address: string; bodyFile: string };
    halfPeak.push({ mode, peak, ...best.result }, { mode, peak, ...drive('noop', noopServer.address, noopServer.bodyFile, best.c, best.m) });
  }
  // Still allowed at the end: a task token that expired during the run (tasks.tokenTtlSeconds)
  // would have turned the rest of it into denies, which cost less than the decision measured.
  for (const [name, request] of scenarioRequests) {
    await expectAllowed((servers.get(name) as { address: string }).address, request, `${name}: the scenario request was no longer allowed at the end of the run`);
  }
  for (const [name, admin] of admins) {
    const counts = await evaluationCounts(admin);
    const total = counts.compiled + counts.wasmInline + counts.wasmPool;
    served.push({ server: name, ...counts, compiledShare: total === 0 ? 0 : Math.round((counts.compiled / total) * 10000) / 10000 });
  }
} finally {
  for (const s of servers.values()) s.child.kill('SIGTERM');
}

const ratio = (a: { rps: number } | undefined, b: { rps: number }): number | null => (a === undefined ? null : b.rps > 0 ? Math.round((a.rps / b.rps) * 1000) / 1000 : 0);
/** A server's rounds at one level as one result: requests summed, throughput the median round's, latency over every answered call. */
function merged(name: ServerName, inFlight: number): LevelResult | undefined {
  const own = results.filter((r) => r.server === name && r.inFlight === inFlight);
  if (own.length === 0) return undefined;
  const latencies = Float64Array.from(own.flatMap((r) => [...r.latencies])).sort();
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    server: name, inFlight, round: own.length, requests: own.reduce((n, r) => n + r.requests, 0), incomplete: own.reduce((n, r) => n + r.incomplete, 0),
    rps: Math.round(median(own.map((r) => r.rps))), p50us: at(0.5), p90us: at(0.9), p99us: at(0.99), p999us: at(0.999), latencies,
  };
}
/** Mandate's throughput over the no-op's, round by round at one level: the median, lowest and highest. */
function ratios(name: ServerName, inFlight: number): { median: number; low: number; high: number; rounds: number[] } | null {
  const per: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const a = results.find((r) => r.server === name && r.inFlight === inFlight && r.round === round);
    const b = results.find((r) => r.server === 'noop' && r.inFlight === inFlight && r.round === round);
    if (a !== undefined && b !== undefined) per.push(ratio(a, b) ?? 0);
  }
  if (per.length === 0) return null;
  return { median: Math.round(median(per) * 1000) / 1000, low: Math.min(...per), high: Math.max(...per), rounds: per };
}
const withoutSamples = (r: LevelResult): Omit<LevelResult, 'latencies'> => {
  const { latencies: _samples, ...rest } = r;
  return rest;
};
const rows = LEVELS.map(([c, m]) => {
  const inFlight = c * m;
  const b = merged('noop', inFlight) as LevelResult;
  // `mandate`: inline when it ran, else the first mode asked for; `pool` and `auto` when they ran beside it.
  const main = modes.includes('inline') ? 'mandate' : nameOf(modes[0] as Mode);
  const a = merged(main, inFlight) as LevelResult;
  const pool = main !== 'mandate-pool' ? merged('mandate-pool', inFlight) : undefined;
  const auto = main !== 'mandate-auto' ? merged('mandate-auto', inFlight) : undefined;
  const poolRatios = pool === undefined ? null : ratios('mandate-pool', inFlight);
  const autoRatios = auto === undefined ? null : ratios('mandate-auto', inFlight);
  const mainRatios = ratios(main, inFlight);
  return {
    inFlight,
    mandate: withoutSamples(a),
    ...(pool === undefined ? {} : { pool: withoutSamples(pool), poolThroughputRatio: poolRatios?.median ?? null, poolRatioRange: poolRatios }),
    ...(auto === undefined ? {} : { auto: withoutSamples(auto), autoThroughputRatio: autoRatios?.median ?? null, autoRatioRange: autoRatios }),
    noop: withoutSamples(b),
    throughputRatio: mainRatios?.median ?? 0,
    ratioRange: mainRatios,
  };
});
const report = {
  time: new Date().toISOString(),
  node: process.version,
  secondsPerWindow: seconds,
  warmSeconds,
  roundsPerLevel: rounds,
  request: requestFile ?? `scenario: ${scenario?.policies} policies, JWT-SVID caller, task token (bench/scenario.ts)`,
  modes,
  levels: rows,
  halfPeak: halfPeak.map(withoutSamples),
  evaluations: served,
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
const md = [
  `# Mandate under load (${report.time}, Node ${process.version}, h2load, ${rounds} rounds of ${seconds} s per server and level, after ${warmSeconds} s of warm-up each)`,
  '',
  `Request: ${report.request}.`,
  '',
  "req/s: the median round's; latency over every call of the rounds. The ratio is taken within each round (a Mandate's window against the no-op's beside it): the median of the rounds, then the lowest and highest.",
  '',
  '| in flight | server | req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | cut at window edge | Mandate / no-op throughput |',
  '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.flatMap((r) => {
    const range = (x: { median: number; low: number; high: number } | null | undefined): string => (x == null ? '' : `${x.median} (${x.low}–${x.high})`);
    const lines = [[r.noop, ''], [r.mandate, range(r.ratioRange)]] as [Omit<LevelResult, 'latencies'>, string][];
    if ('pool' in r && r.pool !== undefined) lines.push([r.pool, range(r.poolRatioRange)]);
    if ('auto' in r && r.auto !== undefined) lines.push([r.auto, range(r.autoRatioRange)]);
    return lines.map(([x, ratioText]) => `| ${r.inFlight} | ${x.server} | ${x.rps} | ${x.p50us} | ${x.p90us} | ${x.p99us} | ${x.p999us} | ${x.incomplete} | ${ratioText} |`);
  }),
  '',
  '## Near half of peak (target: p99 < 2 ms)',
  '',
  `Each mode at the number in flight (of ${HALF_PEAK_LEVELS.map(([c, m]) => c * m).join(', ')}) whose throughput came closest to half of its peak above, and the no-op at the same number.`,
  '',
  '| mode | its peak req/s | in flight | server | req/s | share of peak | p50 µs | p90 µs | p99 µs | p99.9 µs |',
  '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...halfPeak.map((x) => `| ${x.mode} | ${x.peak} | ${x.inFlight} | ${x.server} | ${x.rps} | ${x.server === 'noop' ? '' : (x.rps / x.peak).toFixed(2)} | ${x.p50us} | ${x.p90us} | ${x.p99us} | ${x.p999us} |`),
  '',
  '## Where the evaluations ran (target: ≥ 99% compiled)',
  '',
  "Each Mandate's own count over the whole run (/v1/status `evaluations`): compiled JavaScript, cedar-wasm on the main thread, cedar-wasm in the pool.",
  '',
  '| server | compiled | cedar-wasm inline | cedar-wasm pool | share compiled |',
  '| --- | ---: | ---: | ---: | ---: |',
  ...served.map((x) => `| ${x.server} | ${x.compiled} | ${x.wasmInline} | ${x.wasmPool} | ${(x.compiledShare * 100).toFixed(2)}% |`),
  '',
];
writeFileSync(out.replace(/\.json$/, '.md'), md.join('\n'));
writeFileSync(out.replace(/\.json$/, '.svg'), renderLatencyChart(rows));
process.stdout.write(`${md.join('\n')}\nwrote ${out}, .md and .svg\n`);
