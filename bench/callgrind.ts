// What callgrind wrote at a dump (`callgrind_control -d`), for the instruction counters
// (instructions.ts, check-instructions.ts): the counters are zeroed before the counted work and
// dumped after it, so the parts written at the dump hold exactly that work.

import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Instructions in the parts of `outFile` (its --callgrind-out-file) written at a dump, in all
 * threads and in the main thread alone (with --separate-threads, the file ending "-01").
 */
export function dumpedInstructions(outFile: string): { all: number; main: number } {
  const dir = dirname(outFile);
  let all = 0;
  let main = 0;
  for (const f of readdirSync(dir).filter((x) => x.startsWith(basename(outFile)))) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (!/^desc: Trigger: dump/m.test(text)) continue;
    const n = Number(/^summary:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    all += n;
    if (/-0*1$/.test(f)) main += n;
  }
  if (all === 0) throw new Error(`callgrind counted nothing in ${outFile}`);
  return { all, main };
}
