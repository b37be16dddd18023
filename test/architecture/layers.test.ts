// Imports point down (STYLE.md 13, issue #13): the decision vocabulary sits in src/core/ and every
// layer imports it downward; no module imports from a layer above its own, and no two modules
// import each other, directly or around a longer circle. Read from the sources, so a new upward
// arrow fails here before it settles in.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { kPackageRoot } from '../../src/package-root.js';

// Bottom to top. Files directly in src/ are their own layer.
const LAYERS = ['core', 'json', 'package-root.ts', 'config', 'identity', 'policy', 'tasks', 'check', 'telemetry', 'server', 'cli', 'main.ts'];
const SRC = join(kPackageRoot, 'src');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g;

function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? modules(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'))));
}

const layerOf = (file: string): string => relative(SRC, file).split('/')[0] as string;

describe('module layers', () => {
  const graph = new Map(modules().map((m) => [m, importsOf(m)]));

  it('knows every layer in src/', () => {
    for (const m of graph.keys()) assert.ok(LAYERS.includes(layerOf(m)), `${relative(SRC, m)}: layer "${layerOf(m)}" is not in LAYERS`);
  });

  it('has no import from a layer above', () => {
    const up: string[] = [];
    for (const [m, targets] of graph) {
      for (const t of targets) if (LAYERS.indexOf(layerOf(t)) > LAYERS.indexOf(layerOf(m))) up.push(`${relative(SRC, m)} -> ${relative(SRC, t)}`);
    }
    assert.deepEqual(up, []);
  });

  it('has no circle of imports between modules', () => {
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (m: string, path: string[]): void => {
      if (state.get(m) === 'done') return;
      if (state.get(m) === 'open') {
        circles.push([...path.slice(path.indexOf(m)), m].map((x) => relative(SRC, x)).join(' -> '));
        return;
      }
      state.set(m, 'open');
      for (const t of graph.get(m) ?? []) if (graph.has(t)) visit(t, [...path, m]);
      state.set(m, 'done');
    };
    for (const m of graph.keys()) visit(m, []);
    assert.deepEqual(circles, []);
  });
});
