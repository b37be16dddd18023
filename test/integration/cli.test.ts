// The mandate command as a user runs it: check, validate, and serve in a child process.

import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVING_STATUS } from '../../src/server/health.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { REQUESTS_DIR, copyExample, createHealthClient, exampleRequests, runCli, spawnServer, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';
import { waitFor } from '../helpers/wait.js';

describe('mandate check', () => {
  let running: RunningServer;
  before(async () => {
    running = await startExampleServer();
  });
  after(async () => running.close());

  for (const { name, request } of exampleRequests()) {
    it(`agrees with the server on ${name}`, async () => {
      const cli = await runCli(['check', '--request', join(REQUESTS_DIR, name)]);
      const out = JSON.parse(cli.stdout) as { decision: string; code: string | null; httpStatus: number };
      const client = createCheckClient(running.address);
      const res = await client.check(request);
      client.close();
      const body = res.deniedResponse ? (JSON.parse(res.deniedResponse.body ?? '{}') as { code?: string; error?: { data: { code: string } } }) : null;
      const serverCode = body === null ? null : (body.code ?? body.error?.data.code ?? null);
      assert.equal(out.decision, name.startsWith('allow-') ? 'allow' : 'deny');
      assert.equal(cli.code, out.decision === 'allow' ? 0 : 2);
      assert.equal(out.code, serverCode);
      assert.equal(out.httpStatus, res.deniedResponse?.status?.code ?? 200);
    });
  }

  it('reads the request from stdin with -', async () => {
    const cli = await runCli(['check', '--request', '-'], JSON.stringify(checkRequest('GET', '/tickets/T-9', { principal: SUPPORT_AGENT })));
    assert.equal(cli.code, 0);
    assert.equal(JSON.parse(cli.stdout).decision, 'allow');
  });

  it('explains a decision: the Cedar request and the determining policies', async () => {
    const cli = await runCli(['check', '--explain', '--request', join(REQUESTS_DIR, 'deny-support-critical-case.json')]);
    assert.equal(cli.code, 2);
    const out = JSON.parse(cli.stdout);
    assert.deepEqual(out.explain.determiningPolicies, ['no-agent-critical-cases']);
    assert.deepEqual(out.explain.cedarRequest.principal, { type: 'Workload', id: SUPPORT_AGENT });
    assert.deepEqual(out.explain.cedarRequest.action, { type: 'Action', id: 'POST /cases' });
    assert.equal(out.explain.cedarRequest.context.body.priority, 'critical');
  });

  it('exits 1 on a request file that is not JSON', async () => {
    const cli = await runCli(['check', '--request', '-'], 'not json');
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /cannot read the request/);
  });
});

describe('mandate validate and startup errors', () => {
  it('validates the embedded example', async () => {
    const cli = await runCli(['validate']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /policies: 18 \(version sha256:[0-9a-f]{16}\)/);
  });

  const broken: [string, (dir: string) => void, RegExp][] = [
    ['a policy with a syntax error', (dir) => appendFileSync(join(dir, 'policies/guardrails.cedar'), '\n\npermit (principal, action, resource)\nwhen { context.x = 1 };\n'), /guardrails\.cedar:22: .*'=' is not a valid operator/],
    ['a policy that violates the schema', (dir) => writeFileSync(join(dir, 'policies/extra.cedar'), '\n@id("bad")\npermit (principal, action, resource)\nwhen { context.nope == 1 };\n'), /extra\.cedar:4: .*attribute `nope`/],
    ['a schema with a syntax error', (dir) => appendFileSync(join(dir, 'schema.cedarschema'), '\nentity Broken {\n'), /schema\.cedarschema:\d+: /],
    ['a missing policy directory', (dir) => rmSync(join(dir, 'policies'), { recursive: true }), /policies: cannot read the policy directory \(ENOENT\)/],
    ['an unknown config key', (dir) => appendFileSync(join(dir, 'mandate.yaml'), '\nexplian: true\n'), /mandate\.yaml:\d+: config\.explian: unknown key/],
    ['a secret header in the context allowlist', (dir) => writeFileSync(join(dir, 'mandate.yaml'), readFileSync(join(dir, 'mandate.yaml'), 'utf8').replace('x-tenant-id]', 'x-tenant-id, Authorization]')), /config\.context\.headers\[4\]: "Authorization" carries credentials/],
    ['two policies with one id', (dir) => writeFileSync(join(dir, 'policies/dup.cedar'), '@id("public-status")\nforbid (principal, action, resource);\n'), /public\.cedar:2: policy id "public-status" is already used at .*dup\.cedar:1/],
    ['a route parameter the resource does not have', (dir) => writeFileSync(join(dir, 'mandate.yaml'), readFileSync(join(dir, 'mandate.yaml'), 'utf8').replace('Application::"case-management"', 'Case::"{id}"')), /config\.routes\[2\]\.resource: "\{id\}" is not a parameter of \/cases/],
    [
      'a pinned tool list whose schema cannot be enforced',
      (dir) => {
        writeFileSync(join(dir, 'support-tools.json'), readFileSync(join(dir, 'support-tools.json'), 'utf8').replace('"additionalProperties": false', '"patternProperties": { "^x-": { "type": "string" } }'));
      },
      /config\.routes\[4\]\.tools: .*support-tools\.json tools\[0\] \("get_ticket"\) inputSchema \/patternProperties: "patternProperties" decides types/,
    ],
  ];
  for (const [name, breakIt, expected] of broken) {
    it(`refuses to start with ${name}, naming where`, async () => {
      const { dir, config } = copyExample();
      breakIt(dir);
      const validate = await runCli(['validate', '--config', config]);
      assert.equal(validate.code, 1);
      assert.match(validate.stderr, expected);
      const serve = await runCli(['serve', '--config', config, '--listen', '127.0.0.1:0']);
      assert.equal(serve.code, 1);
      assert.match(serve.stderr, expected);
      assert.match(serve.stderr, /mandate: not started/);
      rmSync(dir, { recursive: true, force: true });
    });
  }
});

describe('mandate serve lifecycle', () => {
  it('drains on SIGTERM: NOT_SERVING, refuses new calls, exits 0', async () => {
    const server = await spawnServer([]);
    const health = createHealthClient(server.address);
    assert.equal(await health.check(), SERVING_STATUS.SERVING);
    const seen: number[] = [];
    const watch = health.watch('', (s) => seen.push(s));
    await sleep(100);
    server.child.kill('SIGTERM');
    await watch.end;
    assert.deepEqual(seen, [SERVING_STATUS.SERVING, SERVING_STATUS.NOT_SERVING]);
    assert.equal(await server.exited, 0);
    const client = createCheckClient(server.address);
    await assert.rejects(client.check(checkRequest('GET', '/status'), 1000));
    client.close();
    health.close();
    assert.match(server.stderr(), /"msg":"stopped","how":"graceful"/);
  });

  it('answers or refuses every call in flight at SIGTERM, then exits 0', async () => {
    const server = await spawnServer([]);
    const client = createCheckClient(server.address);
    await client.check(checkRequest('GET', '/status'));
    const calls = Array.from({ length: 300 }, (_, i) =>
      client.check(checkRequest('GET', `/tickets/T-${i}`, { principal: SUPPORT_AGENT }), 5000).then(
        (res) => ({ answered: true as const, allowed: (res.status?.code ?? 0) === 0 }),
        (err: { code?: number }) => ({ answered: false as const, code: err.code }),
      ),
    );
    server.child.kill('SIGTERM');
    const settled = await Promise.all(calls);
    client.close();
    assert.equal(await server.exited, 0);
    for (const s of settled) {
      // An answered call is a real decision (this request is allowed by policy); a refused one
      // is a gRPC error, which Envoy (failure_mode_allow: false) turns into a deny.
      if (s.answered) assert.equal(s.allowed, true);
      else assert.ok(typeof s.code === 'number' && s.code !== 0);
    }
  });

  it('logs one decision line per Check on stdout, with no credential in any output', async () => {
    const server = await spawnServer([]);
    const client = createCheckClient(server.address);
    const secret = 'eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl';
    const ids: string[] = [];
    for (const request of [
      checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT, headers: { authorization: `Bearer ${secret}`, cookie: `session=${secret}` } }),
      checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT, headers: { 'x-api-key': secret } }),
      checkRequest('GET', '/prod-db/customers', { principal: SUPPORT_AGENT, headers: { 'txn-token': secret } }),
    ]) {
      const res = await client.check(request);
      const headers = res.okResponse?.headers ?? res.deniedResponse?.headers ?? [];
      ids.push(headers.find((h) => h.header?.key === 'x-mandate-decision-id')?.header?.value ?? '');
    }
    client.close();
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    const lines = server.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l['decisionId']), ids);
    assert.deepEqual(lines.map((l) => [l['decision'], l['code']]), [['allow', null], ['deny', 'policy_denied'], ['deny', 'no_route']]);
    assert.deepEqual(lines[1]?.['determiningPolicies'], ['no-agent-internal-tickets']);
    assert.ok(!server.stdout().includes('c2VjcmV0LXRva2Vu') && !server.stderr().includes('c2VjcmV0LXRva2Vu'), 'no token in any output');
    assert.match(server.stderr(), /"decisionLog":\{"written":3,"dropped":0,"failed":0,"sampledOut":0\}/);
  });

  it('listens on MANDATE_LISTEN when --listen is not given', async () => {
    const port = await freePort();
    const server = await spawnServer([], { MANDATE_LISTEN: `127.0.0.1:${port}` }, { listenFlag: false });
    try {
      assert.equal(server.address, `127.0.0.1:${port}`);
      const health = createHealthClient(server.address);
      assert.equal(await health.check(), SERVING_STATUS.SERVING);
      health.close();
    } finally {
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
    }
  });

  it('reloads policies when a file changes and keeps the old version when the new one is bad', async () => {
    const { dir, config } = copyExample();
    const server = await spawnServer(['--config', config]);
    const client = createCheckClient(server.address);
    const billing = checkRequest('GET', '/tickets/T-1', { principal: 'spiffe://example.org/ns/billing/sa/billing-agent' });
    try {
      assert.equal((await client.check(billing)).status?.code, 7);
      // A bad version is rejected with one log line; the previous version keeps deciding.
      writeFileSync(join(dir, 'policies/billing.cedar'), 'permit (principal action, resource);\n');
      await waitFor('the bad reload is rejected', () => /policy reload rejected/.test(server.stderr()));
      assert.match(server.stderr(), /billing\.cedar:1: /);
      assert.equal((await client.check(billing)).status?.code, 7);
      // A good version is picked up by the watcher.
      writeFileSync(join(dir, 'policies/billing.cedar'), 'permit (principal == Workload::"spiffe://example.org/ns/billing/sa/billing-agent", action in Action::"read", resource);\n');
      await waitFor('the watch reloads the policies', () => /"msg":"policies reloaded","trigger":"watch"/.test(server.stderr()));
      assert.equal((await client.check(billing)).status?.code ?? 0, 0);
      // SIGHUP reloads too.
      rmSync(join(dir, 'policies/billing.cedar'));
      server.child.kill('SIGHUP');
      await waitFor('the new policies deny billing', async () => ((await client.check(billing)).status?.code ?? 0) === 7);
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolvePort(port));
    });
  });
}
