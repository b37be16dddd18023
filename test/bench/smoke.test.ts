// The benchmarks keep working: one short run, checked for shape. Nothing about speed is
// asserted here (speed lives in `npm run bench`, compared within one run).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { kPackageRoot } from '../../src/package-root.js';

describe('npm run bench (smoke)', () => {
  it('measures every stage and the whole check against a same-run baseline', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mandate-bench-')), 'latest.json');
    const run = spawnSync(process.execPath, [resolve(kPackageRoot, 'dist/bench/run.js'), '--smoke', '--ms', '120', '--out', out], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    const check = report.sections.check as { name: string; ops: number; throughputRatioToBaseline: number }[];
    assert.equal(check[0]?.throughputRatioToBaseline, 1);
    for (const r of [...report.sections.stages, ...check]) {
      assert.ok(r.ops > 0, `${r.name} ran`);
      assert.ok(Number.isFinite(r.throughputRatioToBaseline), `${r.name} has a ratio`);
    }
    assert.match(readFileSync(out.replace(/\.json$/, '.md'), 'utf8'), /\| check: GET \/tickets\/\{id\} bytes -> bytes \|/);
  });
});
