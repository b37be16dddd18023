// The task flow as an operator runs it: `mandate task ...` and `mandate keys ...` against a
// running server process, and the JWKS on the admin port verifying the tokens it issues.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { makeTrustDomain, mint } from '../helpers/jwt.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { exampleWith, runCli, spawnServer, type ChildServer } from '../helpers/server.js';
import { SUPERVISOR, codeOf } from '../helpers/task-fixture.js';
import { createCheckClient, type CheckClient } from '../helpers/upstream.js';

describe('mandate task and mandate keys against a running server', () => {
  const td = makeTrustDomain('example.org');
  let server: ChildServer;
  let config: string;
  let check: CheckClient;
  let admin: string;

  before(async () => {
    ({ config } = exampleWith(
      {
        identity: 'identity:\n  jwtSvid:\n    audiences: [mandate]\n  bundles:\n    - { trustDomain: example.org, file: ./example.org.json }\n',
        decisionLog: 'decisionLog:\n  sink: "off"\n',
      },
      { 'example.org.json': td.bundle() },
    ));
    server = await spawnServer(['--config', config]);
    admin = /"admin":"([^"]+)"/.exec(server.stderr())?.[1] ?? '';
    check = createCheckClient(server.address);
  });
  after(async () => {
    check.close();
    server.child.kill('SIGTERM');
    await server.exited;
  });

  const as = async (id: string) => ({ MANDATE_JWT_SVID: await mint({ key: td.keys[0]!, sub: id }) });
  const task = async (args: string[], id = SUPPORT_AGENT) => runCli(['task', ...args, '--server', server.address], undefined, await as(id));
  const call = (path: string, token: string, method = 'GET') =>
    check.check(checkRequest(method, path, { principal: SUPPORT_AGENT, headers: { 'txn-token': token, 'x-tenant-id': 'acme' } }));

  it('starts, approves, shows and ends a task from the command line', async () => {
    const started = await task(['start', '--purpose', 'refund T-9', '--tenant', 'acme', '--tool', 'tickets.read', '--tool', 'cases.refund', '--max-calls', '5']);
    assert.equal(started.code, 0, started.stderr);
    const { token, taskId, grantedTools } = JSON.parse(started.stdout) as { token: string; taskId: string; grantedTools: string[] };
    assert.deepEqual(grantedTools, ['tickets.read', 'cases.refund']);
    assert.equal(codeOf(await call('/tickets/T-9', token)), null);
    assert.equal(codeOf(await call('/cases/C-9/refunds', token, 'POST')), 'policy_denied');
    const approved = await task(['approve', taskId, '--scope', 'cases.refund', '--ttl', '60'], SUPERVISOR);
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(codeOf(await call('/cases/C-9/refunds', token, 'POST')), null);
    const shown = await task(['show', taskId]);
    assert.equal(JSON.parse(shown.stdout).calls, 2);
    assert.equal((await task(['end', taskId])).code, 0);
    assert.equal(codeOf(await call('/tickets/T-9', token)), 'task_revoked');
  });

  it('binds an approval to an arguments digest and makes it single-use from the command line', async () => {
    const { taskId } = JSON.parse((await task(['start', '--purpose', 'p', '--tenant', 'acme', '--tool', 'cases.refund'])).stdout) as { taskId: string };
    const digest = 'ab'.repeat(32);
    const approved = await task(['approve', taskId, '--scope', 'support/create_case', '--arguments-digest', digest, '--uses', '1'], SUPERVISOR);
    assert.equal(approved.code, 0, approved.stderr);
    const body = JSON.parse(approved.stdout) as { argumentsDigest: string; uses: number };
    assert.equal(body.argumentsDigest, digest);
    assert.equal(body.uses, 1);
    const refused = await task(['approve', taskId, '--scope', 'support/create_case', '--arguments-digest', 'not-hex'], SUPERVISOR);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /bad_request: argumentsDigest must be a hex SHA-256 digest/);
  });

  it('exits 2 with the reason code when the server refuses', async () => {
    const unauthenticated = await runCli(['task', 'start', '--purpose', 'p', '--tenant', 'acme', '--tool', 'tickets.read', '--server', server.address], undefined, { MANDATE_JWT_SVID: '' });
    assert.equal(unauthenticated.code, 2);
    assert.match(unauthenticated.stderr, /unauthenticated: /);
  });

  it('publishes a JWKS on the admin port that verifies the tokens it issues', async () => {
    const { token } = JSON.parse((await task(['start', '--purpose', 'p', '--tenant', 'acme', '--tool', 'tickets.read'])).stdout) as { token: string };
    const res = await fetch(`http://${admin}/.well-known/jwks.json`);
    assert.equal(res.headers.get('content-type'), 'application/jwk-set+json');
    const jwks = (await res.json()) as { keys: { kid: string; d?: string }[] };
    assert.ok(jwks.keys.every((k) => k.d === undefined), 'no private key material');
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks as never), { typ: 'txntoken+jwt', audience: 'example.org', issuer: 'mandate' });
    assert.equal(payload['req_wl'], SUPPORT_AGENT);
  });

  it('rotates keys: after SIGHUP new tokens use the new key and old ones still verify in the overlap', async () => {
    const before = JSON.parse((await task(['start', '--purpose', 'p', '--tenant', 'acme', '--tool', 'tickets.read'])).stdout) as { token: string };
    const rotated = await runCli(['keys', 'rotate', '--config', config]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const { newKid } = JSON.parse(rotated.stdout) as { newKid: string };
    server.child.kill('SIGHUP');
    let after: { token: string } | null = null;
    for (let i = 0; i < 50; i++) {
      after = JSON.parse((await task(['start', '--purpose', 'p', '--tenant', 'acme', '--tool', 'tickets.read'])).stdout) as { token: string };
      if (decodeProtectedHeader(after.token).kid === newKid) break;
      await sleep(50);
    }
    assert.equal(decodeProtectedHeader(after!.token).kid, newKid);
    assert.equal(codeOf(await call('/tickets/T-1', before.token)), null, 'the previous key verifies during the overlap');
    assert.equal(codeOf(await call('/tickets/T-1', after!.token)), null);
    const jwks = (await (await fetch(`http://${admin}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    assert.equal(jwks.keys.length, 2);
  });
});
