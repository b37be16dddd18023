// How long `mandate serve` takes from spawn to its "listening" line, on the embedded example,
// beside a baseline measured in the same rounds: a Node process that loads grpc-js and
// answers on a port (what any gRPC ext_authz server in Node pays before its first request).
//   node dist/bench/startup.js [--rounds N]
// Reported: median, min and max of each, and the ratio of the medians.

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { kPackageRoot } from '../src/package-root.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' } } });
const rounds = Number(values.rounds);
const MAIN = resolve(kPackageRoot, 'dist/src/main.js');
const BASELINE = `
const grpc = require('@grpc/grpc-js');
const s = new grpc.Server();
s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), () => process.stderr.write('"msg":"listening"\\n'));
`;

function timeToListening(args: string[]): Promise<number> {
  return new Promise((resolveTime, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { cwd: kPackageRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      if (err.includes('"msg":"listening"')) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        child.kill('SIGKILL');
        resolveTime(ms);
      }
    });
    child.on('exit', (code) => {
      if (!err.includes('"msg":"listening"')) reject(new Error(`exited with ${code}: ${err}`));
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const mandate: number[] = [];
const baseline: number[] = [];
for (let i = 0; i < rounds; i++) {
  baseline.push(await timeToListening(['-e', BASELINE]));
  mandate.push(await timeToListening([MAIN, 'serve', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--log-level', 'info']));
}
const line = (name: string, xs: number[]): string => `| ${name} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} |`;
process.stdout.write(
  [
    `Spawn to listening, ${rounds} alternating rounds (ms):`,
    '',
    '| process | median | min | max |',
    '| --- | ---: | ---: | ---: |',
    line('grpc-js server, nothing loaded (baseline)', baseline),
    line('mandate serve, the example', mandate),
    '',
    `Mandate / baseline (medians): ${(median(mandate) / median(baseline)).toFixed(2)}x`,
    '',
  ].join('\n'),
);
