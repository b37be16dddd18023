// The command line as an operator meets it (issue #15 §3): --help and -h on every command exit 0,
// a mistyped flag is one line and the usage (exit 1), no user error prints a stack trace, busy
// ports stop serve before it writes anything, validate checks routes against the schema, and
// read-only commands write nothing.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAIN_JS, REQUESTS_DIR, copyExample, createHealthClient, runCli, spawnServer } from '../helpers/server.js';
import { freePort } from '../helpers/redis.js';
import { SERVING_STATUS } from '../../src/server/health.js';
import { kPackageRoot } from '../../src/package-root.js';

const COMMANDS = ['serve', 'check', 'test', 'validate', 'task', 'keys', 'replay', 'health'];
const STACK = /\n\s+at /;

function occupy(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

describe('a CLI that behaves', () => {
  for (const command of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      it(`mandate ${command} ${flag} prints its usage and exits 0`, async () => {
        const cli = await runCli([command, flag]);
        assert.equal(cli.code, 0, cli.stderr);
        assert.match(cli.stdout, new RegExp(`^usage:\\n  mandate ${command} `));
        assert.equal(cli.stderr, '');
      });
    }
  }

  it('mandate --version prints the package version', async () => {
    const cli = await runCli(['--version']);
    assert.equal(cli.code, 0);
    assert.equal(cli.stdout.trim(), (JSON.parse(readFileSync(join(kPackageRoot, 'package.json'), 'utf8')) as { version: string }).version);
  });

  const mistakes: [string[], RegExp][] = [
    [['serve', '--listn', '127.0.0.1:0'], /^mandate serve: Unknown option '--listn'/],
    [['check', '--requets', 'x.json'], /^mandate check: Unknown option '--requets'/],
    [['validate', '--confg', 'x.yaml'], /^mandate validate: Unknown option '--confg'/],
    [['replay'], /^mandate replay: --log FILE is required/],
    [['check'], /^mandate check: --request FILE \(or - for stdin\) is required/],
    [['task', 'frob'], /^mandate task: unknown subcommand "frob"/],
    [['task', 'show'], /^mandate task: show needs TASK_ID/],
    [['keys', 'frob'], /^mandate keys: unknown subcommand "frob"/],
    [['serve', '--listen'], /^mandate serve: Option '--listen <value>' argument missing/],
  ];
  for (const [args, message] of mistakes) {
    it(`mandate ${args.join(' ')}: one line and the usage, exit 1, no stack trace`, async () => {
      const cli = await runCli(args);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, message);
      assert.match(cli.stderr, /\nusage:\n {2}mandate /);
      assert.doesNotMatch(cli.stderr, STACK);
    });
  }

  it('names a missing config file in one line, and shows the stack only with --debug', async () => {
    const cli = await runCli(['validate', '--config', '/nonexistent/mandate.yaml']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /cannot read \/nonexistent\/mandate\.yaml: ENOENT/);
    assert.doesNotMatch(cli.stderr, STACK);
  });

  for (const which of ['check', 'admin'] as const) {
    it(`stops serve on a busy ${which} port with one line, before writing the task key file`, async () => {
      const { dir, config } = copyExample();
      const busy = await occupy();
      const address = `127.0.0.1:${(busy.address() as AddressInfo).port}`;
      try {
        const args = which === 'check' ? ['serve', '--config', config, '--listen', address, '--admin-listen', 'off'] : ['serve', '--config', config, '--listen', '127.0.0.1:0', '--admin-listen', address];
        const cli = await runCli(args);
        assert.equal(cli.code, 1);
        assert.match(cli.stderr, new RegExp(`^mandate serve: address ${address.replace(/\./g, '\\.')} \\(${which}\\) is in use\\n$`));
        assert.doesNotMatch(cli.stdout + cli.stderr, /"msg":"listening"/);
        assert.equal(existsSync(join(dir, '.mandate')), false, 'no key file was written');
      } finally {
        busy.close();
      }
    });
  }

  it('validate refuses a route whose action the schema does not declare, and a resource type outside appliesTo', async () => {
    const { config } = copyExample();
    writeFileSync(config, readFileSync(config, 'utf8').replace('  - { method: GET, path: /status }', '  - { method: GET, path: /status }\n  - { method: DELETE, path: "/tickets/{id}", resource: \'Ticket::"{id}"\' }\n  - { method: GET, path: /cases, resource: \'Ticket::"all"\' }'));
    const cli = await runCli(['validate', '--config', config]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /config\.routes\[1\]: action "DELETE \/tickets\/\{id\}" is not declared in .*schema\.cedarschema/);
    assert.match(cli.stderr, /config\.routes\[2\]: action "GET \/cases" is not declared/);
    assert.doesNotMatch(cli.stderr, STACK);
  });

  it('validate refuses a resource type outside the action\'s appliesTo', async () => {
    const { config } = copyExample();
    writeFileSync(config, readFileSync(config, 'utf8').replace('  - { method: GET, path: /status }', '  - { method: GET, path: /status, resource: \'Ticket::"status"\' }'));
    const cli = await runCli(['validate', '--config', config]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /config\.routes\[0\]: resource type Ticket is not in the appliesTo of action "GET \/status"/);
  });

  it('reports a schema error once, in the schema, not again against entities.json', async () => {
    const { dir, config } = copyExample();
    writeFileSync(join(dir, 'schema.cedarschema'), `${readFileSync(join(dir, 'schema.cedarschema'), 'utf8')}\nentity Broken {\n`);
    const cli = await runCli(['validate', '--config', config]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /schema\.cedarschema:\d+: /);
    assert.doesNotMatch(cli.stderr, /entities\.json/);
  });

  it('keys jwks and a mistyped keys command write no key file', async () => {
    const { dir, config } = copyExample();
    const jwks = await runCli(['keys', 'jwks', '--config', config]);
    assert.equal(jwks.code, 0, jwks.stderr);
    assert.deepEqual(JSON.parse(jwks.stdout), { keys: [] });
    assert.equal((await runCli(['keys', 'frob', '--config', config])).code, 1);
    assert.equal(existsSync(join(dir, '.mandate')), false);
  });

  it('takes a log level, and refuses one it does not know', async () => {
    const bad = await runCli(['serve', '--log-level', 'loud']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mandate serve: --log-level \(or MANDATE_LOG_LEVEL\) must be one of debug, info, warn, error, silent, not "loud"/);
    // At warn, a server that starts and drains prints no info lines at all.
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN_JS, 'serve', '--log-level', 'warn', '--listen', `127.0.0.1:${port}`, '--admin-listen', 'off'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const health = createHealthClient(`127.0.0.1:${port}`);
    for (let i = 0; i < 100; i++) {
      if ((await health.check().catch(() => -1)) === SERVING_STATUS.SERVING) break;
      await sleep(100);
    }
    assert.equal(await health.check(), SERVING_STATUS.SERVING);
    health.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    assert.doesNotMatch(stderr, /"level":"info"/);
  });

  it('warns, loudly, when serving plaintext on an address that is not loopback', async () => {
    const server = await spawnServer(['--listen', '0.0.0.0:0'], {}, { listenFlag: false });
    try {
      assert.match(server.stderr(), /"level":"warn","msg":"serving ext_authz in plaintext on a non-loopback address/);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const local = await spawnServer([]);
    try {
      assert.doesNotMatch(local.stderr(), /plaintext/);
    } finally {
      local.child.kill('SIGTERM');
      await local.exited;
    }
  });

  it('mandate check decides a folder of requests, one line each, and exits 2 when any is denied', async () => {
    const cli = await runCli(['check', REQUESTS_DIR]);
    assert.equal(cli.code, 2, cli.stderr);
    const lines = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; decision: string });
    assert.equal(lines.length, readdirSync(REQUESTS_DIR).filter((f) => f.endsWith('.json')).length);
    for (const l of lines) assert.equal(l.decision, basename(l.file).startsWith('allow-') ? 'allow' : 'deny', l.file);
    const allows = readdirSync(REQUESTS_DIR).filter((f) => f.startsWith('allow-')).map((f) => join(REQUESTS_DIR, f));
    assert.equal((await runCli(['check', ...allows])).code, 0);
  });

  it('mandate check --server asks a running server, and gets what it answers', async () => {
    const server = await spawnServer([]);
    try {
      const allow = await runCli(['check', '--server', server.address, '--request', join(REQUESTS_DIR, 'allow-support-read-ticket.json')]);
      assert.equal(allow.code, 0, allow.stderr);
      assert.equal((JSON.parse(allow.stdout) as { decision: string }).decision, 'allow');
      const deny = await runCli(['check', '--server', server.address, join(REQUESTS_DIR, 'deny-support-internal-ticket.json')]);
      assert.equal(deny.code, 2);
      assert.deepEqual(((o) => [o.decision, o.code, o.httpStatus])(JSON.parse(deny.stdout) as { decision: string; code: string; httpStatus: number }), ['deny', 'policy_denied', 403]);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    const unreachable = await runCli(['check', '--server', '127.0.0.1:1', join(REQUESTS_DIR, 'allow-public-status.json')]);
    assert.equal(unreachable.code, 1);
    assert.doesNotMatch(unreachable.stderr, STACK);
  });
});
