// An op's time right after the CPU caches were emptied, against its time just after that (warm
// again). This VM interrupts every process about once a millisecond (bench/run.ts, "machine"),
// and what an interrupted op pays is mostly refilling its working set: the cold time is what
// the slowest ~1% of an op's samples look like, and it grows with the code and data the op
// touches, not with the instructions it runs.

import type { Op } from './stats.js';

export interface ColdResult {
  readonly name: string;
  /** Median µs of the op right after the caches were emptied. */
  readonly coldUs: number;
  /** Median µs of the op run again at once. */
  readonly warmUs: number;
}

/** Bytes written between ops to push everything else out of the caches (more than any L3 here). */
const EVICT_BYTES = 32 * 1024 * 1024;

export async function coldAndWarm(ops: Record<string, Op>, rounds = 400): Promise<ColdResult[]> {
  const evict = new Int32Array(EVICT_BYTES / 4);
  let sink = 0;
  const time = async (op: Op): Promise<number> => {
    const t0 = process.hrtime.bigint();
    const r = op();
    if (r instanceof Promise) await r;
    return Number(process.hrtime.bigint() - t0);
  };
  const results: ColdResult[] = [];
  for (const [name, op] of Object.entries(ops)) {
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // One int per 64-byte line: every line written, so each is fetched and owned.
      for (let j = 0; j < evict.length; j += 16) sink += evict[j] = (evict[j] as number) + 1;
      cold.push(await time(op));
      warm.push(await time(op));
    }
    results.push({ name, coldUs: medianUs(cold), warmUs: medianUs(warm) });
  }
  if (sink === 0.5) process.stdout.write(''); // keeps the eviction loop from being dropped
  return results;
}

function medianUs(ns: number[]): number {
  const sorted = [...ns].sort((a, b) => a - b);
  return Math.round((sorted[sorted.length >> 1] as number) / 10) / 100;
}
