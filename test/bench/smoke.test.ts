// The benchmarks keep working: one short run, checked for shape. Nothing about speed is
// asserted here (speed lives in `npm run bench`, compared within one run).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { kPackageRoot } from '../../src/package-root.js';
import { EXAMPLE_POLICIES } from '../../bench/scenario.js';
import { loadPolicyVersion } from '../../src/policy/loader.js';

describe('npm run bench (smoke)', () => {
  it('knows how many policies the example has', () => {
    const dir = resolve(kPackageRoot, 'examples/agent-gateway');
    assert.equal(loadPolicyVersion({ policies: join(dir, 'policies'), schema: join(dir, 'schema.cedarschema'), entities: join(dir, 'entities.json') }).policies.length, EXAMPLE_POLICIES);
  });

  it('measures every stage, evaluation at 17 to 10,000 policies and the whole check against a same-run baseline', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-bench-')), 'latest.json');
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/run.js'), '--smoke', '--ms', '120', '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const check = report.sections.check as { name: string; ops: number; throughputRatioToBaseline: number }[];
    assert.equal(check[0]?.throughputRatioToBaseline, 1);
    const evaluation = report.sections.evaluation as { name: string }[];
    for (const n of [EXAMPLE_POLICIES, 100, 1000, 10000]) {
      for (const how of ['compiled (as served)', 'cedar-wasm sliced + projected', 'whole set and context']) assert.ok(evaluation.some((r) => r.name === `evaluate, ${n} policies, ${how}`), `evaluation at ${n} policies, ${how}`);
    }
    assert.ok(check.some((r) => r.name === 'check: 1000 policies, JWT-SVID + task token'), 'the issue #5 scenario is measured');
    assert.equal((report.sections.pool as unknown[]).length, 3, 'the pool round trip is measured');
    for (const r of [...report.sections.stages, ...evaluation, ...check]) {
      assert.ok(r.ops > 0, `${r.name} ran`);
      assert.ok(Number.isFinite(r.throughputRatioToBaseline), `${r.name} has a ratio`);
    }
    assert.ok(check.some((r) => r.name.startsWith('machine: arithmetic')), "the machine's own part of a p99 is measured beside the Check");
    const cold = report.cold as { name: string; coldUs: number; warmUs: number }[];
    assert.deepEqual(cold.map((c) => c.name.split(':')[0]), ['baseline', 'check', 'check', 'machine'], 'the cold-cache times of the baseline, two Checks and the arithmetic');
    for (const c of cold) assert.ok(c.coldUs > 0 && c.warmUs > 0, `${c.name} was timed cold and warm`);
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /\| check: GET \/tickets\/\{id\} bytes -> bytes \|/);
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /## cold caches/);
  });
});

describe('npm run bench: load (smoke)', () => {
  it('drives Mandate (1,000 policies, JWT-SVID, task token; inline and pooled) and the no-op server with h2load at every level and writes the table, JSON and chart', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-load-')), 'load.json');
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/load.js'), '--smoke', '--seconds', '1', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      roundsPerLevel: number;
      levels: { inFlight: number; mandate: { requests: number; rps: number }; pool?: { requests: number }; noop: { requests: number; rps: number }; throughputRatio: number; ratioRange: { median: number; low: number; high: number; rounds: number[] } }[];
      halfPeak: { mode: string; server: string; peak: number; inFlight: number; requests: number; p99us: number }[];
      evaluations: { server: string; compiled: number; wasmInline: number; wasmPool: number; compiledShare: number }[];
    };
    assert.deepEqual(report.levels.map((l) => l.inFlight), [1, 16, 64, 256]);
    // Two rounds per level in the smoke run: the ratio is the median of the rounds' own ratios.
    assert.equal(report.roundsPerLevel, 2);
    for (const l of report.levels) {
      assert.ok(l.mandate.requests > 0 && (l.pool?.requests ?? 0) > 0 && l.noop.requests > 0, `Mandate inline, Mandate pooled and the no-op answered at ${l.inFlight} in flight`);
      assert.equal(l.ratioRange.rounds.length, 2);
      assert.ok(l.ratioRange.rounds.every((x) => Number.isFinite(x) && x > 0));
      assert.equal(l.throughputRatio, Math.round(((l.ratioRange.rounds[0] as number) + (l.ratioRange.rounds[1] as number)) / 2 * 1000) / 1000);
      assert.equal(l.ratioRange.low, Math.min(...l.ratioRange.rounds));
      assert.equal(l.ratioRange.high, Math.max(...l.ratioRange.rounds));
    }
    // Each mode again near half of its peak, the no-op at the same number in flight beside it.
    assert.deepEqual(report.halfPeak.map((h) => `${h.mode}:${h.server}`), ['inline:mandate', 'inline:noop', 'pool:mandate-pool', 'pool:noop', 'auto:mandate-auto', 'auto:noop']);
    for (const [i, h] of report.halfPeak.entries()) {
      assert.ok([2, 4, 8].includes(h.inFlight) && h.inFlight === report.halfPeak[i - (i % 2)]?.inFlight, JSON.stringify(h));
      assert.ok(h.peak > 0 && h.requests > 0 && h.p99us > 0, `${h.server} answered at ${h.inFlight} in flight`);
    }
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /## Near half of peak/);
    // Each Mandate's own count of where its evaluations ran, read from its /v1/status: at least
    // one per request h2load saw answered, and the scenario's all compiled (issue #14).
    assert.deepEqual(report.evaluations.map((e) => e.server), ['mandate', 'mandate-pool', 'mandate-auto']);
    for (const e of report.evaluations) {
      const answered = report.levels.reduce((n, l) => n + (e.server === 'mandate' ? l.mandate.requests : e.server === 'mandate-pool' ? (l.pool?.requests ?? 0) : 0), 0);
      assert.ok(e.compiled + e.wasmInline + e.wasmPool >= answered, `${e.server}: ${JSON.stringify(e)} against ${answered} answered`);
      assert.equal(e.compiledShare, e.compiled / (e.compiled + e.wasmInline + e.wasmPool) > 0 ? Math.round((e.compiled / (e.compiled + e.wasmInline + e.wasmPool)) * 10000) / 10000 : 0);
      assert.equal(e.compiledShare, 1, `${e.server}: every evaluation of the scenario compiled`);
    }
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /\| mandate-pool \| \d+ \| 0 \| 0 \| 100\.00% \|/);
    assert.match(readFileSync(out.replace(/\.json$/, '.svg'), 'utf8'), /^<svg [^>]*>[\s\S]*Mandate p99[\s\S]*<\/svg>\n$/);
  });
});

describe('bench/layers (smoke)', () => {
  it('measures the CPU per call of every layer server, mandate serve and the no-op under h2load, and writes the table', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-layers-')), 'layers.md');
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/layers.js'), '--smoke', '--out', out], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const rows = readFileSync(out, 'utf8').split('\n').filter((l) => /^\| [a-z0-9]+ \| /.test(l) && !l.startsWith('| server |'));
    assert.deepEqual(rows.map((r) => r.split(' | ')[0]?.slice(2)), ['http2', 'grpc', 'decode', 'decide', 'metrics', 'log', 'serve', 'noop']);
    for (const row of rows) {
      const main = Number(row.split(' | ')[2]);
      assert.ok(main > 0 && Number.isFinite(main), `CPU per call measured: ${row}`);
    }
  });
});

describe('bench/check-instructions (smoke)', () => {
  it('counts the instructions of in-process Checks of the scenario under callgrind and prints them per Check', () => {
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/check-instructions.js'), '--policies', String(EXAMPLE_POLICIES), '--warmup', '300', '--checks', '30'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const m = new RegExp(`: (\\d+) instructions per Check, main thread \\(30 Checks after 300; scenario in process, ${EXAMPLE_POLICIES} policies\\)`).exec(run.stdout);
    assert.ok(m !== null, run.stdout);
    // A Check is tens of thousands of instructions once warm (a few hundred thousand before
    // TurboFan): a count outside this range did not count the Checks.
    const perCheck = Number(m[1]);
    assert.ok(perCheck > 10_000 && perCheck < 5_000_000, `instructions per Check: ${perCheck}`);
  });
});

describe('npm run bench:soak (smoke)', () => {
  it('serves steady load from a pooled Mandate run as the Dockerfile runs it, sampling its resident memory, and writes the report', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-soak-')), 'soak.json');
    // The malloc settings come from the Dockerfile, not from this environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_')));
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/soak.js'), '--smoke', '--workers', '2', '--rate', '200', '--container', '--out', out], { encoding: 'utf8', timeout: 180_000, env });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const report = JSON.parse(readFileSync(out, 'utf8')) as { workers: number; nodeArgs: string[]; malloc: string[]; succeeded: number; samples: { rssMb: number }[]; rssEndMb: number; growthOverSteadyMb: number; cpuSeconds: number; cpuMicrosecondsPerRequest: number };
    assert.equal(report.workers, 2);
    // The Dockerfile's ENTRYPOINT flags and ENV, as Mandate's process had them (read from /proc).
    const dockerfile = readFileSync(resolve(kPackageRoot, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^ENTRYPOINT \["node", "--max-semi-space-size=8", "--heap-growing-percent=25", /m);
    assert.deepEqual(report.nodeArgs, ['--max-semi-space-size=8', '--heap-growing-percent=25']);
    assert.match(dockerfile, /^ENV MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2$/m);
    assert.deepEqual(report.malloc, ['MALLOC_ARENA_MAX=2', 'MALLOC_MMAP_THRESHOLD_=131072']);
    assert.ok(report.cpuSeconds > 0 && report.cpuMicrosecondsPerRequest > 0, 'the CPU Mandate used was measured');
    assert.ok(report.succeeded > 0, 'requests were answered');
    assert.ok(report.samples.length >= 3 && report.samples.every((s) => s.rssMb > 0), 'memory was sampled');
    assert.ok(Number.isFinite(report.growthOverSteadyMb));
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /growth over the steady part/);
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /glibc malloc: MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072\./);
  });
});

describe('bench/profile (smoke)', () => {
  it('profiles every thread of a pooled Mandate under load and sums each by where the code lives', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-profile-')), 'profile.md');
    // Compiled evaluation off: every evaluation goes to the pool's worker, whose profile is checked.
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/profile.js'), '--mode', 'pool', '--compiled', 'off', '--seconds', '1', '--in-flight', '8', '--out', out], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const md = readFileSync(out, 'utf8');
    const rps = Number(/for 1 s: ([\d.]+) Check\/s/.exec(md)?.[1]);
    assert.ok(rps > 0, 'requests were answered under the profiler');
    // The main thread first, then the evaluation worker, which is where Cedar runs.
    const sections = [...md.matchAll(/^## (.+?): [\d.]+ s of samples under load$/gm)].map((m) => m[1]);
    assert.equal(sections[0], 'Main thread');
    assert.ok(sections.slice(1).some((t) => /^Thread \d+ \(evaluation worker\)$/.test(t ?? '')), sections.join(', '));
    const worker = md.slice(md.indexOf('(evaluation worker)'));
    assert.match(worker, /\| cedar-wasm \(evaluation, JSON in and out\) \| [\d.]+% \|/);
  });
});

describe('bench/half-sent (smoke)', () => {
  it('measures Mandate\'s RSS under half-sent messages and times a legitimate Check in each phase', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-half-sent-')), 'half-sent.json');
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/half-sent.js'), '--smoke', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`);
    const report = JSON.parse(readFileSync(out, 'utf8')) as { rows: { phase: string; rssMb: number; checkMs: number; note: string }[] };
    assert.equal(report.rows.length, 4);
    for (const r of report.rows) {
      assert.ok(r.rssMb > 0, `${r.phase}: RSS read`);
      assert.ok(r.checkMs > 0, `${r.phase}: a Check was decided`);
    }
    assert.match(report.rows[1]?.note ?? '', /^20 refused RESOURCE_EXHAUSTED/);
  });
});
