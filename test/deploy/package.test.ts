// The package the Dockerfile installs: `npm pack` of this repository, unpacked elsewhere, serves
// the embedded example and answers the gRPC health check the image uses (`mandate health`).
// Its dependencies are this checkout's node_modules, linked in: installing them from the registry
// is what `npm install <tarball>` in the Dockerfile does, and no registry is assumed here.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { kPackageRoot } from '../../src/package-root.js';

describe('the npm package', () => {
  it('unpacks with everything serve needs, serves the embedded example and answers `mandate health`', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-pack-'));
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    // dist/ is built already (npm test builds first); --ignore-scripts: pack what is there.
    const tarball = execFileSync(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: kPackageRoot, encoding: 'utf8' }).trim().split('\n').pop() as string;
    execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir]);
    const pkg = join(dir, 'package');
    for (const needed of ['dist/src/main.js', 'proto/envoy/service/auth/v3/external_auth.proto', 'examples/agent-gateway/mandate.yaml', 'README.md', 'LICENSE']) {
      assert.ok(existsSync(join(pkg, needed)), `${needed} is in the package`);
    }
    assert.equal(existsSync(join(pkg, 'test')), false, 'tests are not shipped');
    assert.equal(existsSync(join(pkg, 'src/main.ts')), false, 'sources are not shipped');
    symlinkSync(resolve(kPackageRoot, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    const main = join(pkg, 'dist/src/main.js');
    const server = spawn(process.execPath, [main, 'serve', '--listen', '127.0.0.1:0', '--admin-listen', 'off'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      const address = await new Promise<string>((ok, fail) => {
        let text = '';
        const timer = setTimeout(() => fail(new Error(`did not start:\n${text}`)), 30_000);
        server.stderr.on('data', (c: Buffer) => {
          text += c.toString();
          const m = /"msg":"listening","address":"([^"]+)"/.exec(text);
          if (m) {
            clearTimeout(timer);
            ok(m[1] as string);
          }
        });
        server.once('exit', (code) => fail(new Error(`exited ${code}:\n${text}`)));
      });
      const health = execFileSync(process.execPath, [main, 'health', '--server', address], { encoding: 'utf8' });
      assert.equal(health, 'SERVING\n');
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    // Nothing listens there any more: health says so and exits 1.
    const down = spawn(process.execPath, [main, 'health', '--server', '127.0.0.1:1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    down.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((r) => down.once('exit', r));
    assert.equal(code, 1);
    assert.match(out, /^UNREACHABLE: /);
  });
});
