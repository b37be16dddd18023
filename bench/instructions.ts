// Instructions per Check under callgrind: Mandate and the no-op grpc-js server (noop-server.ts),
// each run under valgrind; after start-up and a warm-up the counters are zeroed, N requests are
// sent one at a time by h2load, and the counters are dumped. Instruction counts do not drift with the load of
// a shared machine the way times do. One call in flight, the example's allow request
// (examples/requests/allow-support-read-ticket.json). The warm-up is 8,000 calls: after 2,000,
// V8 was still optimizing (~190 TurboFan compilations between calls 2,000 and 4,000, --trace-opt),
// which put ~300,000 instructions of compilation into every measured Check of both servers.
//   node dist/bench/instructions.js [--requests N] [--warmup N] [--out FILE]
// Needs valgrind (apt-get install valgrind) and h2load. Slow: a few minutes.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { MANDATE_LISTENING, writeGrpcFrame } from './harness.js';
import { dumpedInstructions } from './callgrind.js';

const { values } = parseArgs({ options: { requests: { type: 'string' }, warmup: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' } } });
const requests = Number(values.requests ?? 2000);
const warmup = Number(values.warmup ?? 8000);
const out = values.out ?? resolve(kPackageRoot, 'bench/results/instructions.md');

for (const tool of ['valgrind', 'callgrind_control', 'h2load']) {
  if (spawnSync(tool, ['--version']).error) {
    process.stderr.write(`${tool} not found: apt-get install valgrind nghttp2-client\n`);
    process.exit(1);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'mandate-instructions-'));
const frame = join(dir, 'request.bin');
writeGrpcFrame(frame, JSON.parse(readFileSync(resolve(kPackageRoot, 'examples/requests/allow-support-read-ticket.json'), 'utf8')));

function underValgrind(name: string, args: string[], match: RegExp, stream: 'stdout' | 'stderr'): Promise<{ child: ChildProcess; address: string; outFile: string }> {
  const outFile = join(dir, `${name}.callgrind`);
  const child = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${outFile}`, process.execPath, ...args], { stdio: ['ignore', stream === 'stdout' ? 'pipe' : 'ignore', stream === 'stderr' ? 'pipe' : 'ignore'] });
  return new Promise((ok, fail) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error(`${name} did not start under valgrind:\n${text}`)), 600_000);
    let started = false;
    child[stream]?.on('data', (c: Buffer) => {
      if (started) return; // keep reading: a full pipe would stop the server
      text += c.toString();
      const m = match.exec(text);
      if (m) {
        started = true;
        clearTimeout(timer);
        ok({ child, address: m[1] as string, outFile });
      }
    });
  });
}

function h2load(address: string, n: number): void {
  const run = spawnSync('h2load', ['-n', String(n), '-c', '1', '-m', '1', '-d', frame, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-H', 'grpc-timeout: 10S', `http://${address}/envoy.service.auth.v3.Authorization/Check`], { encoding: 'utf8' });
  if (!/requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.test(run.stdout)) throw new Error(`h2load failed:\n${run.stdout}${run.stderr}`);
  const m = /(\d+) succeeded/.exec(run.stdout);
  if (Number(m?.[1]) !== n) throw new Error(`h2load: not every request succeeded:\n${run.stdout}`);
}

// The other threads are V8's helpers (TurboFan compiles, concurrent GC): their share varies by
// ~±50,000 instructions per Check between runs of the same code, so the main thread's figure is
// the steadier one.

async function measure(name: string, args: string[], match: RegExp, stream: 'stdout' | 'stderr'): Promise<{ all: number; main: number }> {
  const { child, address, outFile } = await underValgrind(name, args, match, stream);
  try {
    h2load(address, warmup);
    spawnSync('callgrind_control', ['-z', String(child.pid)]);
    h2load(address, requests);
    spawnSync('callgrind_control', ['-d', String(child.pid)]);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  const { all, main } = dumpedInstructions(outFile);
  return { all: all / requests, main: main / requests };
}

const config = values.config ?? null;
const noop = await measure('noop', [resolve(kPackageRoot, 'dist/bench/noop-server.js')], /"address":"([^"]+)"/, 'stdout');
const mandate = await measure('mandate', [resolve(kPackageRoot, 'dist/src/main.js'), 'serve', ...(config === null ? [] : ['--config', config]), '--listen', '127.0.0.1:0', '--admin-listen', 'off', '--log-level', 'info'], MANDATE_LISTENING, 'stderr');
const lines = [
  `# Instructions per Check under callgrind (${new Date().toISOString()}, Node ${process.version})`,
  '',
  `${requests} requests one at a time after ${warmup} of warm-up, the example's allow request, decision log to stdout.`,
  '',
  '| server | instructions per Check, all threads | ratio to the no-op | main thread alone | ratio to the no-op |',
  '| --- | ---: | ---: | ---: | ---: |',
  `| no-op grpc-js server | ${Math.round(noop.all)} | 1 | ${Math.round(noop.main)} | 1 |`,
  `| Mandate | ${Math.round(mandate.all)} | ${(mandate.all / noop.all).toFixed(2)} | ${Math.round(mandate.main)} | ${(mandate.main / noop.main).toFixed(2)} |`,
  '',
  "The other threads are V8's helpers (TurboFan, concurrent GC); their count varies by about ±50,000 per Check between runs of the same code.",
  '',
];
writeFileSync(out, lines.join('\n'));
process.stdout.write(`${lines.join('\n')}wrote ${out}\n`);
