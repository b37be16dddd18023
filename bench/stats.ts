// Timing helpers for the benchmarks: per-operation samples, percentiles, and A/B rounds run
// alternately so that machine noise hits both sides of a comparison alike.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// A full collection before measuring (below): what the set-up left for the collector (loading
// 1,000 policies leaves ~80 MB) is otherwise marked during the first rounds, on the main thread,
// and measured as the ops' time. Exposed at run time so that `node dist/bench/run.js` needs no flag.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

export interface Result {
  readonly name: string;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50us: number;
  readonly p90us: number;
  readonly p99us: number;
  readonly p999us: number;
}

export type Op = () => unknown;

/** Runs `op` repeatedly for `ms`, timing each call (awaited when it returns a promise). */
export async function sample(op: Op, ms: number, into: number[] = []): Promise<{ samples: number[]; elapsedNs: bigint }> {
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(ms * 1e6));
  let now = start;
  while (now < end) {
    const t0 = process.hrtime.bigint();
    const r = op();
    if (r instanceof Promise) await r;
    now = process.hrtime.bigint();
    into.push(Number(now - t0));
  }
  return { samples: into, elapsedNs: now - start };
}

export function summarize(name: string, samples: number[], elapsedNs: bigint): Result {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number): number => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) / 1000;
  return {
    name,
    ops: samples.length,
    opsPerSec: Math.round(samples.length / (Number(elapsedNs) / 1e9)),
    p50us: round(at(0.5)),
    p90us: round(at(0.9)),
    p99us: round(at(0.99)),
    p999us: round(at(0.999)),
  };
}

/**
 * Measures several ops in alternating rounds; each gets the same total time. Each op first runs
 * unmeasured for as long as one round (at least 50 ms): until V8 has optimized what it calls, the
 * op is slower, and with the 50 ms this harness used to allow, the first round of a whole Check
 * (of the ~60 functions it runs) moved its p50 from ~7 to ~10 µs and its p99 from ~50 to ~80 µs.
 */
export async function compare(ops: Record<string, Op>, totalMs: number, rounds = 6): Promise<Result[]> {
  const names = Object.keys(ops);
  const samples = new Map(names.map((n) => [n, [] as number[]]));
  const elapsed = new Map(names.map((n) => [n, 0n]));
  for (const name of names) await sample(ops[name] as Op, Math.max(50, totalMs / rounds)); // warm up
  collect();
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 === 0 ? names : [...names].reverse()) {
      const { elapsedNs } = await sample(ops[name] as Op, totalMs / rounds, samples.get(name));
      elapsed.set(name, (elapsed.get(name) ?? 0n) + elapsedNs);
    }
  }
  return names.map((n) => summarize(n, samples.get(n) ?? [], elapsed.get(n) ?? 1n));
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
