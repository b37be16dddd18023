// Memory under steady load (issue #5, target 4): Mandate on the scenario grown to 10,000
// policies with 4 pool workers, driven by h2load at a fixed rate for several minutes, its
// resident set (main thread and workers: one process) sampled from /proc every few seconds.
// Reports RSS after start, after warm-up, at the end, and the growth over the steady part.
// --node-args passes V8/Node flags to Mandate's process (the Dockerfile's memory settings:
// "--max-semi-space-size=8 --heap-growing-percent=25"); the CPU time Mandate used is reported
// beside its RSS, so a memory setting's price is measured in the same run. --container runs
// Mandate as the Dockerfile does: its ENTRYPOINT's Node flags and its glibc malloc settings
// (ENV MALLOC_*), read from the Dockerfile itself. The report names the malloc settings in
// effect, whether set here or inherited: the same code gives ~40 MB more RSS without them.
//   node dist/bench/soak.js [--minutes N] [--policies N] [--workers N] [--rate R] [--node-args="FLAGS"] [--container] [--smoke] [--out FILE]

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { writeScenario, EXAMPLE_POLICIES } from './scenario.js';
import { startMandate, startScenarioTask, writeGrpcFrame } from './harness.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    policies: { type: 'string' },
    workers: { type: 'string' },
    rate: { type: 'string' },
    'node-args': { type: 'string' },
    container: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const seconds = values.smoke ? 6 : Number(values.minutes ?? 5) * 60;
const policies = Number(values.policies ?? (values.smoke ? 1000 : 10000));
const workers = Number(values.workers ?? 4);
// Requests per second: steady, below saturation, so that memory and not queueing is measured.
const rate = Number(values.rate ?? 1000);
const out = values.out ?? resolve(kPackageRoot, 'bench/results/soak.json');
// The report goes beside the JSON with .md for .json: another name would write both to one file.
if (!out.endsWith('.json')) {
  process.stderr.write(`--out ${out}: give the .json path (the .md report is written beside it)\n`);
  process.exit(2);
}
const container = values.container ? dockerfileSettings(readFileSync(resolve(kPackageRoot, 'Dockerfile'), 'utf8')) : { env: {}, nodeArgs: [] };
const nodeArgs = [...container.nodeArgs, ...(values['node-args'] ?? '').split(' ').filter((a) => a !== '')];
const childEnv: NodeJS.ProcessEnv = { ...process.env, ...container.env };

/** The glibc malloc settings in a process's environment, as the process has it (/proc/PID/environ). */
function mallocSettingsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .filter((v) => v.startsWith('MALLOC_'))
    .sort();
}

/** The Dockerfile's malloc settings (ENV MALLOC_*=...) and the Node flags its ENTRYPOINT gives before the script. */
function dockerfileSettings(dockerfile: string): { env: Record<string, string>; nodeArgs: string[] } {
  const env: Record<string, string> = {};
  for (const line of dockerfile.split('\n')) {
    if (!line.startsWith('ENV ')) continue;
    for (const m of line.matchAll(/(MALLOC_\w+)=(\S+)/g)) env[m[1] as string] = m[2] as string;
  }
  const entry = /^ENTRYPOINT (\[.*\])\s*$/m.exec(dockerfile);
  if (entry === null) throw new Error('the Dockerfile has no ENTRYPOINT in exec form');
  const argv = JSON.parse(entry[1] as string) as string[];
  const script = argv.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  return { env, nodeArgs: argv.slice(1, script < 0 ? argv.length : script) };
}

if (spawnSync('h2load', ['--version']).error) {
  process.stderr.write('h2load not found: apt-get install nghttp2-client\n');
  process.exit(1);
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024);
}

/** CPU seconds the process has used, all its threads (utime + stime, proc(5)). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const scenario = writeScenario(policies - EXAMPLE_POLICIES);
const config = join(scenario.dir, 'mandate-soak.yaml');
writeFileSync(config, `${readFileSync(scenario.config, 'utf8')}\nevaluation:\n  mode: pool\n  workers: ${workers}\n`);
const loadStarted = Date.now();
const { child, address } = await startMandate(config, nodeArgs, childEnv);
const startupSeconds = (Date.now() - loadStarted) / 1000;
try {
  const request = await startScenarioTask(address, scenario);
  const bodyFile = join(scenario.dir, 'soak.bin');
  writeGrpcFrame(bodyFile, request);

  const pid = child.pid as number;
  const mallocSettings = mallocSettingsOf(pid);
  const cpuAtStart = cpuSeconds(pid);
  const samples: { t: number; rssMb: number }[] = [{ t: 0, rssMb: rssMb(pid) }];
  const t0 = Date.now();
  const sampler = setInterval(() => samples.push({ t: Math.round((Date.now() - t0) / 1000), rssMb: rssMb(pid) }), values.smoke ? 1000 : 5000);
  // h2load paces each of 4 clients at rate/4 requests per second (--rps is per client).
  const h2load = spawn('h2load', [
    `http://${address}/envoy.service.auth.v3.Authorization/Check`,
    '-c', '4', '-m', '8', '-t', '1', '--rps', String(Math.max(1, Math.round(rate / 4))), '-D', String(seconds),
    '-d', bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let h2out = '';
  h2load.stdout?.on('data', (c: Buffer) => (h2out += c.toString()));
  await new Promise<void>((ok) => h2load.on('exit', () => ok()));
  clearInterval(sampler);
  samples.push({ t: Math.round((Date.now() - t0) / 1000), rssMb: rssMb(pid) });
  const cpuUsed = cpuSeconds(pid) - cpuAtStart;

  const steadyFrom = samples.find((s) => s.t >= seconds * 0.2) ?? samples[0];
  const last = samples[samples.length - 1] as { t: number; rssMb: number };
  const report = {
    time: new Date().toISOString(),
    node: process.version,
    policies,
    workers,
    nodeArgs,
    malloc: mallocSettings,
    targetRps: rate,
    seconds,
    startupSeconds,
    achievedRps: Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(h2out)?.[1] ?? 0),
    succeeded: Number(/(\d+) succeeded/.exec(h2out)?.[1] ?? 0),
    rssAfterStartMb: samples[0]?.rssMb,
    rssAfterWarmupMb: steadyFrom?.rssMb,
    rssEndMb: last.rssMb,
    rssMaxMb: Math.max(...samples.map((s) => s.rssMb)),
    growthOverSteadyMb: last.rssMb - (steadyFrom?.rssMb ?? last.rssMb),
    cpuSeconds: Math.round(cpuUsed * 100) / 100,
    cpuMicrosecondsPerRequest: Math.round((cpuUsed * 1e6) / Math.max(1, Number(/(\d+) succeeded/.exec(h2out)?.[1] ?? 0))),
    samples,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  const md = [
    `# Mandate memory soak (${report.time}, Node ${process.version})`,
    '',
    `${policies} policies, ${workers} pool workers, h2load at ${rate} req/s for ${seconds} s (achieved ${report.achievedRps} req/s, ${report.succeeded} answered). Startup ${startupSeconds.toFixed(1)} s. Node flags: ${nodeArgs.length === 0 ? 'none' : nodeArgs.join(' ')}. glibc malloc: ${mallocSettings.length === 0 ? 'defaults' : mallocSettings.join(' ')}.`,
    '',
    '| RSS after start | after warm-up (20%) | max | end | growth over the steady part | CPU per request (all threads) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${report.rssAfterStartMb} MB | ${report.rssAfterWarmupMb} MB | ${report.rssMaxMb} MB | ${report.rssEndMb} MB | ${report.growthOverSteadyMb} MB | ${report.cpuMicrosecondsPerRequest} µs |`,
    '',
  ];
  writeFileSync(out.replace(/\.json$/, '.md'), md.join('\n'));
  process.stdout.write(`${md.join('\n')}\nwrote ${out} and .md\n`);
} finally {
  child.kill('SIGTERM');
}
