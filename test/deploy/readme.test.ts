// The README's quickstart, as a reader follows it: `npm start` serves the embedded example (with
// the address overridden, as the README says it may be), and each command line the README shows
// runs and exits as a decision of its kind does (0 allowed, 2 denied). The commands are read from
// the README itself, so an example that goes stale fails here.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kPackageRoot } from '../../src/package-root.js';
import { createHealthClient } from '../helpers/server.js';

const README = readFileSync(join(kPackageRoot, 'README.md'), 'utf8');
const commands = [...README.matchAll(/^node dist\/src\/main\.js (.+)$/gm)].map((m) => (m[1] as string).split(/\s+/));

describe('the README', () => {
  it('shows commands that run as it says', () => {
    assert.ok(commands.length >= 3, 'the README shows command lines to try');
    for (const args of commands) {
      for (const a of args) if (a.startsWith('examples/')) assert.ok(existsSync(join(kPackageRoot, a)), `${a} exists`);
      const r = spawnSync(process.execPath, ['dist/src/main.js', ...args], { cwd: kPackageRoot, encoding: 'utf8' });
      const named = args.find((a) => /\/(allow|deny)-[^/]+\.json$/.test(a));
      const want = named === undefined ? 0 : named.includes('/allow-') ? 0 : 2;
      assert.equal(r.status, want, `${args.join(' ')}\n${r.stderr}`);
      assert.equal(r.stderr, '', `${args.join(' ')} writes nothing to stderr`);
    }
  });

  it('starts the example with `npm start`', async () => {
    const child = spawn('npm', ['start', '--silent', '--', '--listen', '127.0.0.1:0', '--admin-listen', 'off'], { cwd: kPackageRoot, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    try {
      const address = await new Promise<string>((resolveListening, reject) => {
        const timer = setTimeout(() => reject(new Error(`npm start did not serve within 60 s:\n${err}`)), 60_000);
        child.stderr.on('data', (chunk: Buffer) => {
          err += chunk.toString();
          const m = /"msg":"listening","address":"([^"]+)"/.exec(err);
          if (m !== null) {
            clearTimeout(timer);
            resolveListening(m[1] as string);
          }
        });
        child.on('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${err}`)));
      });
      const health = createHealthClient(address);
      try {
        assert.equal(await health.check(), 1, 'SERVING');
      } finally {
        health.close();
      }
    } finally {
      // npm runs the server in a child of its own: stop the whole group.
      process.kill(-(child.pid as number), 'SIGTERM');
    }
  });
});
