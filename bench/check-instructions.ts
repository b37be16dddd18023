// Instructions per Check of the performance scenario decided in process (scenario-in-process.ts:
// 1,000 policies, a JWT-SVID caller, a task token; decided with decideNow and answered with the
// allowed answer's template, as the server does), counted by callgrind in the main thread. A
// count does not drift with the load of a shared machine as times do (identical runs of one tree
// here moved 15-38 us per Check): it is the figure to compare two trees with, `--root` naming the
// other one's checkout (built: its dist/ is loaded).
//   node dist/bench/check-instructions.js [--checks N] [--warmup N] [--policies N] [--root DIR]
// TurboFan compiles on the main thread here (--no-concurrent-recompilation): under valgrind its
// background jobs finished late enough that one of two runs of the same tree still measured
// unoptimized code (155,838 instructions per Check against 97,780). Needs valgrind.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { kPackageRoot } from '../src/package-root.js';
import { dumpedInstructions } from './callgrind.js';

const { values } = parseArgs({ options: { checks: { type: 'string' }, warmup: { type: 'string' }, policies: { type: 'string' }, root: { type: 'string' }, child: { type: 'boolean', default: false } } });
const checks = Number(values.checks ?? 2000);
const warmup = Number(values.warmup ?? 8000);
const policies = Number(values.policies ?? 1000);
const root = resolve(values.root ?? kPackageRoot);

if (values.child) await child();
else await parent();

/** Under valgrind: warm up, say so, then decide `checks` Checks when told to (SIGUSR2). */
async function child(): Promise<void> {
  const load = (path: string) => import(pathToFileURL(join(root, 'dist', path)).href);
  const { startScenarioInProcess } = await load('bench/scenario-in-process.js');
  const { decideNow } = await load('src/check/pipeline.js');
  const { AllowFrames } = await load('src/server/frames.js');
  const { checkResponseFrame, decodeCheckRequestBytes } = await load('src/server/protos.js');
  const { state, bytes } = await startScenarioInProcess(policies);
  const frames = new AllowFrames(state.config);
  const answer = (d: { allowed: boolean; code: string | null }): Buffer => {
    if (!d.allowed) throw new Error(`the scenario request was denied (${d.code}): the count would be a deny's`);
    return checkResponseFrame(frames.answer(d));
  };
  // Answered in the same turn when decided from memory, as the server's Check does: an `await`
  // per Check would count a promise and a microtask turn that serving does not spend.
  const check = (): Promise<unknown> | undefined => {
    const d = decideNow(decodeCheckRequestBytes(bytes), state);
    if (d instanceof Promise) return d.then(answer);
    answer(d);
    return undefined;
  };
  const run = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const waiting = check();
      if (waiting !== undefined) await waiting;
    }
  };
  await run(warmup);
  process.on('SIGUSR2', async () => {
    await run(checks);
    process.stdout.write('done\n');
  });
  process.stdout.write('warm\n');
  setInterval(() => {}, 1 << 30);
}

async function parent(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).error) {
    process.stderr.write('valgrind not found: apt-get install valgrind\n');
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'mandate-check-instructions-'));
  const outFile = join(dir, 'check.callgrind');
  const script = fileURLToPath(import.meta.url);
  const run = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', `--callgrind-out-file=${outFile}`, process.execPath, '--no-concurrent-recompilation', script, '--child', '--root', root, '--checks', String(checks), '--warmup', String(warmup), '--policies', String(policies)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  run.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
  });
  const pid = String(run.pid);
  await new Promise<void>((done, fail) => {
    let said = '';
    run.once('exit', (code) => fail(new Error(`the counted process exited (${code}):\n${stderr}`)));
    run.stdout.on('data', (c: Buffer) => {
      said += c.toString();
      if (said.includes('warm\n')) {
        said = said.replace('warm\n', '');
        spawnSync('callgrind_control', ['-z', pid]);
        run.kill('SIGUSR2');
      }
      if (said.includes('done\n')) {
        spawnSync('callgrind_control', ['-d', pid]);
        done();
      }
    });
  });
  run.removeAllListeners('exit');
  run.kill('SIGTERM');
  await new Promise((r) => run.once('exit', r));
  const { main } = dumpedInstructions(outFile);
  process.stdout.write(`${root}: ${Math.round(main / checks)} instructions per Check, main thread (${checks} Checks after ${warmup}; scenario in process, ${policies} policies)\n`);
}
