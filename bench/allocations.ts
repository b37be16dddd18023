// Bytes allocated per Check, and where: the scenario of bench/run.ts (1,000 policies, a
// JWT-SVID caller, a task token) decided in process, under V8's sampling heap profiler with
// collected objects included (so it counts allocation, not what stays alive). Allocation is what
// drives young-generation collections, which are most of a Check's p99.
//   node dist/bench/allocations.js [--checks N] [--top N]

import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import type { CheckRequestMessage } from '../src/check/decode.js';
import { decideNow } from '../src/check/pipeline.js';
import type { Decision } from '../src/core/decision.js';
import { AllowFrames } from '../src/server/frames.js';
import { checkResponseFrame, decodeCheckRequestBytes } from '../src/server/protos.js';
import { startScenarioInProcess } from './scenario-in-process.js';

const { values } = parseArgs({ options: { checks: { type: 'string', default: '20000' }, top: { type: 'string', default: '25' } } });
const checks = Number(values.checks);

const { state, bytes } = await startScenarioInProcess(1000);
// As the server decides and answers (server.ts): decideNow, the allowed answer's template.
const frames = new AllowFrames(state.config);
const answer = (decision: Decision): Buffer => checkResponseFrame(frames.answer(decision));
const check = (): unknown => {
  const decided = decideNow(decodeCheckRequestBytes(bytes) as CheckRequestMessage, state);
  return decided instanceof Promise ? decided.then(answer) : answer(decided);
};

for (let i = 0; i < checks; i++) {
  const r = check(); // warm up: optimized code allocates differently
  if (r instanceof Promise) await r;
}
const session = new Session();
session.connect();
await session.post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as never);
for (let i = 0; i < checks; i++) {
  const r = check();
  if (r instanceof Promise) await r;
}
const { profile } = (await session.post('HeapProfiler.stopSampling')) as { profile: { head: SampleNode } };

interface SampleNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly SampleNode[];
}
const bySite = new Map<string, number>();
let total = 0;
const walk = (node: SampleNode): void => {
  const site = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/.*\/(dist|node_modules)\//, '')}:${node.callFrame.lineNumber + 1}`;
  total += node.selfSize;
  bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
  for (const child of node.children) walk(child);
};
walk(profile.head);
const lines = [`~${Math.round(total / checks)} bytes allocated per Check (${checks} Checks, sampled every 512 bytes)`, '', '| bytes per Check | where |', '| ---: | --- |'];
for (const [site, size] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) lines.push(`| ${Math.round(size / checks)} | \`${site}\` |`);
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(0);
