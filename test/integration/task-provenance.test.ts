// Provenance is proven or refused (issue #13 §5): a child task needs its parent's token (same
// workload) or a policy delegating the parent (another workload), and the user a task acts for
// comes from a verified subject token, never from what the agent writes.

import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KeyObject } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { newKeyPair } from '../../src/core/keygen.js';

type SigningKey = KeyObject;
import { SUPPORT_AGENT, decodeJwt, startTaskFixture, type TaskFixture } from '../helpers/task-fixture.js';
import { reasonOf } from '../helpers/tasks.js';

const TRIAGE_BOT = 'spiffe://example.org/ns/support/sa/triage-bot';
const IDP = 'https://idp.example.org';

describe('task provenance', () => {
  let f: TaskFixture;
  let idpKey: SigningKey;
  let otherKey: SigningKey;
  const userToken = (claims: Record<string, unknown>, key = idpKey) =>
    new SignJWT({ sub: 'alice@example.org', ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'idp-1' }).setIssuer(String(claims['iss'] ?? IDP)).setAudience('mandate').setIssuedAt().setExpirationTime(typeof claims['exp'] === 'number' ? claims['exp'] : '5m').sign(key);

  before(async () => {
    const idp = newKeyPair({ type: 'ec', namedCurve: 'P-256' });
    idpKey = idp.privateKey;
    otherKey = newKeyPair({ type: 'ec', namedCurve: 'P-256' }).privateKey;
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' }] });
    f = await startTaskFixture(
      `tasks:\n  store: memory\n  tenantFrom: { header: x-tenant-id }\n  subjectIssuers:\n    - { issuer: "${IDP}", jwks: ./idp.jwks.json, audience: mandate }\n`,
      { 'idp.jwks.json': jwks },
      // The triage bot may start tasks too, and the support agent delegates its tasks to it.
      (dir) => appendFileSync(join(dir, 'policies', 'tasks.cedar'), `
@id("triage-bot-starts-tasks")
permit (principal == Workload::"${TRIAGE_BOT}", action in [Action::"StartTask", Action::"GrantTool"], resource);

@id("support-delegates-to-triage")
permit (principal == Workload::"${TRIAGE_BOT}", action == Action::"DelegateTask", resource == Workload::"${SUPPORT_AGENT}")
when { context.tenant == "acme" };
`),
    );
  });
  after(async () => f.close());

  it('refuses a child of one\'s own task without the parent\'s token, and with another task\'s token', async () => {
    const parent = await f.startTask({ tools: ['tickets.read'] });
    const other = await f.startTask({ tools: ['tickets.read'] });
    await assert.rejects(f.startTask({ parentTaskId: parent.taskId }), (e) => reasonOf(e) === 'invalid_token');
    await assert.rejects(f.startTask({ parentTaskId: parent.taskId, parentToken: other.token }), (e) => reasonOf(e) === 'token_binding_mismatch');
    const child = await f.startTask({ parentTaskId: parent.taskId, parentToken: parent.token });
    assert.equal(decodeJwt(child.token)['tctx'] !== undefined, true);
  });

  it('refuses a child of another workload\'s task that no policy delegates', async () => {
    const botTask = await f.startTask({ tools: ['tickets.read'] }, TRIAGE_BOT);
    // The support agent names the bot's task as parent: no DelegateTask permits that direction.
    await assert.rejects(f.startTask({ parentTaskId: botTask.taskId }), (e) => reasonOf(e) === 'policy_denied');
    await assert.rejects(f.startTask({ parentTaskId: botTask.taskId, parentToken: botTask.token }), (e) => reasonOf(e) === 'policy_denied');
  });

  it('lets a workload a policy delegates to start a child, with the delegation in the token', async () => {
    const parent = await f.startTask({ tools: ['tickets.read'] });
    const child = await f.startTask({ tools: ['tickets.read'], parentTaskId: parent.taskId }, TRIAGE_BOT);
    const claims = decodeJwt(child.token);
    assert.equal(claims['req_wl'], TRIAGE_BOT);
    assert.deepEqual(claims['act'], { sub: TRIAGE_BOT, act: { sub: SUPPORT_AGENT } });
  });

  it('refuses a subject the agent only writes down', async () => {
    await assert.rejects(f.startTask({ subject: 'ceo@example.org' }), (e) => reasonOf(e) === 'bad_request');
  });

  it('takes the subject from a verified subject token', async () => {
    const task = await f.startTask({ subjectToken: await userToken({}) });
    assert.equal(decodeJwt(task.token).sub, 'alice@example.org');
    const agreeing = await f.startTask({ subjectToken: await userToken({}), subject: 'alice@example.org' });
    assert.equal(decodeJwt(agreeing.token).sub, 'alice@example.org');
  });

  const refused: [string, () => Promise<Record<string, unknown>>, string][] = [
    ['a subject token signed by another key', async () => ({ subjectToken: await userToken({}, otherKey) }), 'invalid_token'],
    ['a subject token from an issuer not configured', async () => ({ subjectToken: await userToken({ iss: 'https://evil.example' }) }), 'invalid_token'],
    ['an expired subject token', async () => ({ subjectToken: await userToken({ exp: Math.floor(Date.now() / 1000) - 3600 }) }), 'token_expired'],
    ['a subject that differs from the token\'s sub', async () => ({ subjectToken: await userToken({}), subject: 'ceo@example.org' }), 'bad_request'],
    ['a subject token that is not a JWT', async () => ({ subjectToken: 'not-a-jwt' }), 'invalid_token'],
  ];
  for (const [name, build, code] of refused) {
    it(`refuses ${name} (${code})`, async () => {
      await assert.rejects(f.startTask(await build()), (e) => reasonOf(e) === code);
    });
  }
});
