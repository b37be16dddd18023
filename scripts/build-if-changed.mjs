// `npm start` builds only when a source is newer than the build: tsc takes seconds, the
// server itself starts in well under one.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((max, d) => {
    const p = join(dir, d.name);
    return Math.max(max, d.isDirectory() ? newest(p) : d.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }, 0);
const built = join(root, 'dist/src/main.js');
const sources = Math.max(newest(join(root, 'src')), newest(join(root, 'bench')), newest(join(root, 'test')), statSync(join(root, 'tsconfig.json')).mtimeMs);
if (!existsSync(built) || statSync(built).mtimeMs < sources) {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });
  process.exit(tsc.status ?? 1);
}
