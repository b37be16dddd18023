// Where a Check's time goes: Mandate under h2load load with V8's CPU profiler on (--cpu-prof),
// then the profile summed by where the code lives (cedar-wasm, grpc-js, Mandate's own stages,
// jose, garbage collection, idle) and the top functions by self time.
//   node dist/bench/profile.js [--mode inline|pool] [--compiled on|off] [--seconds N] [--in-flight N] [--policies N] [--out FILE]
// With --mode pool each evaluation worker's profile is summarized too (workers start only for what
// cedar-wasm evaluates: --compiled off sends every evaluation there).

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { writeScenario, EXAMPLE_POLICIES } from './scenario.js';
import { startMandate, startScenarioTask, writeGrpcFrame } from './harness.js';

const { values } = parseArgs({
  options: { mode: { type: 'string' }, compiled: { type: 'string' }, seconds: { type: 'string' }, 'in-flight': { type: 'string' }, policies: { type: 'string' }, out: { type: 'string' } },
});
const mode = values.mode ?? 'inline';
const compiled = (values.compiled ?? 'on') !== 'off';
const seconds = Number(values.seconds ?? 10);
const inFlight = Number(values['in-flight'] ?? 64);
const out = values.out ?? resolve(kPackageRoot, `bench/results/profile-${mode}.md`);

const scenario = writeScenario(Number(values.policies ?? 1000) - EXAMPLE_POLICIES);
const config = join(scenario.dir, 'mandate-profile.yaml');
writeFileSync(config, `${readFileSync(scenario.config, 'utf8')}\nevaluation:\n  mode: ${mode}\n  compiled: ${String(compiled)}\n`);
const profDir = mkdtempSync(join(tmpdir(), 'mandate-prof-'));
const spawnedAt = Date.now();
const { child, address } = await startMandate(config, ['--cpu-prof', '--cpu-prof-dir', profDir]);
const bodyFile = join(scenario.dir, 'profile.bin');
writeGrpcFrame(bodyFile, await startScenarioTask(address, scenario));
const clients = Math.min(4, inFlight);
// The profiler starts with the process: samples before the load (startup, loading the policy
// set, the task) are left out of the summary.
const loadFromUs = (Date.now() - spawnedAt) * 1000;
const run = spawnSync('h2load', [
  `http://${address}/envoy.service.auth.v3.Authorization/Check`,
  '-c', String(clients), '-m', String(Math.max(1, Math.round(inFlight / clients))), '-t', '1', '-D', String(seconds),
  '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
], { encoding: 'utf8' });
const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(run.stdout)?.[1] ?? 0);
child.kill('SIGTERM');
await new Promise<void>((ok) => child.on('exit', () => ok()));

// One profile per thread, named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0
// is the main thread, the pool's workers come after it.
const threadOf = (f: string): number => Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(f)?.[1] ?? Number.MAX_SAFE_INTEGER);
const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
if (files.length === 0) throw new Error('no profile written');
const sorted = files.sort((a, b) => threadOf(a) - threadOf(b)).map((f) => join(profDir, f));
if (threadOf(sorted[0] as string) !== 0) throw new Error(`no main-thread profile among ${files.join(', ')}`);

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}
const profiles = sorted.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Profile);
// Sample times are on one monotonic clock for every thread: the load starts loadFromUs after
// the main thread's profile does.
const loadFromAbsUs = (profiles[0] as Profile).startTime + loadFromUs;

function category(n: Node): string {
  const { url, functionName } = n.callFrame;
  if (functionName === '(idle)') return 'idle (waiting for requests)';
  // piscina's worker blocks in Atomics.wait between tasks.
  if (functionName === 'atomicsWaitLoop' && url.includes('piscina')) return 'idle (worker waiting for a task)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return 'V8 and native (program)';
  if (url.includes('cedar-wasm') || url.startsWith('wasm://') || functionName.startsWith('wasm-function') || functionName.includes('Wasm')) return 'cedar-wasm (evaluation, JSON in and out)';
  if (url.includes('piscina')) return 'piscina';
  if (url.includes('@grpc') || url.includes('protobufjs')) return 'grpc-js and protobuf';
  if (url.includes('/jose/')) return 'jose';
  if (url.includes('@opentelemetry')) return 'OpenTelemetry';
  if (url.includes('/dist/src/policy/compiled/')) return 'Mandate: compiled policies (values, readers)';
  if (url === '' && functionName === 'anonymous') return 'Mandate: compiled policies (generated code)';
  if (url.includes('/dist/src/')) return `Mandate: ${url.slice(url.indexOf('/dist/src/') + '/dist/src/'.length).split('/')[0]}`;
  if (url.startsWith('node:')) return 'Node.js (http2, streams, timers, crypto, worker messages)';
  return url === '' ? 'V8 and native (program)' : 'other';
}

function sampledUnderLoad(profile: Profile): boolean {
  let at = profile.startTime;
  return profile.samples.some((_, i) => (at += profile.timeDeltas[i] ?? 0) >= loadFromAbsUs);
}

/** A thread's samples under load, summed by category and by function, as markdown tables. */
function summarize(title: string, profile: Profile): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at >= loadFromAbsUs) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id) as Node;
    byCategory.set(category(n), (byCategory.get(category(n)) ?? 0) + us);
    const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  }
  const pct = (us: number): string => `${((us / total) * 100).toFixed(1)}%`;
  return [
    `## ${title}: ${(total / 1e6).toFixed(1)} s of samples under load`,
    '',
    '| where | share of samples |',
    '| --- | ---: |',
    ...[...byCategory].sort((a, b) => b[1] - a[1]).map(([k, v]) => `| ${k} | ${pct(v)} |`),
    '',
    '| top functions by self time | share |',
    '| --- | ---: |',
    ...[...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${pct(v)} |`),
    '',
  ];
}

const md = [
  `# Where the time goes: Mandate (${mode}, compiled ${compiled ? 'on' : 'off'}) under load (${new Date().toISOString()}, Node ${process.version})`,
  '',
  `Scenario: ${scenario.policies} policies, JWT-SVID caller, task token; h2load ${inFlight} in flight for ${seconds} s: ${rps} Check/s. CPU profiles (--cpu-prof) of every thread, startup left out.`,
  '',
  // Threads with no samples under load (the short-lived policy-load thread at startup) are left out.
  ...profiles.flatMap((p, i) => (i > 0 && !sampledUnderLoad(p) ? [] : summarize(i === 0 ? 'Main thread' : `Thread ${threadOf(sorted[i] as string)} (evaluation worker)`, p))),
];
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, md.join('\n'));
process.stdout.write(`${md.join('\n')}\nwrote ${out}\n`);
