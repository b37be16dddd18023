// The transaction-token verifier's cache: a cached token is answered without a signature check,
// but never beyond its expiry or after its signing key rotated out, and a changed token is never
// taken for a cached one.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { issueTxnToken, TxnTokenVerifier } from '../../src/identity/txn-token.js';
import { KeyRing } from '../../src/identity/task-keys.js';

const OPTIONS = { issuer: 'https://mandate.example.org', audience: 'example.org' };
const NOW = 1_900_000_000;

async function fixture(): Promise<{ keys: KeyRing; verifier: TxnTokenVerifier; token: string }> {
  const keys = KeyRing.open(join(mkdtempSync(join(tmpdir(), 'mandate-txn-')), 'keys.json'), { create: true, now: NOW });
  const token = await issueTxnToken(
    keys,
    OPTIONS,
    { txn: 'task-1', sub: 'agent', req_wl: 'spiffe://example.org/a', scope: 'p', tctx: { tenant: 'acme', tools: [], maxCalls: null, parent: null }, rctx: { authn: 'jwt-svid' }, exp: NOW + 300 },
    NOW,
  );
  return { keys, verifier: new TxnTokenVerifier(keys, OPTIONS), token };
}

describe('cached transaction-token verification', () => {
  it('answers a repeated token with the same claims', async () => {
    const { verifier, token } = await fixture();
    const first = await verifier.verify(token, NOW);
    const second = await verifier.verify(token, NOW + 1);
    assert.ok(first.ok && second.ok);
    assert.deepEqual(second.value, first.value);
    assert.equal(second.value.txn, 'task-1');
  });

  it('refuses a cached token once it has expired (token_expired, as an uncached one)', async () => {
    const { verifier, token } = await fixture();
    assert.ok((await verifier.verify(token, NOW)).ok);
    const late = await verifier.verify(token, NOW + 300 + 6);
    assert.equal(late.ok, false);
    assert.equal(!late.ok && late.code, 'token_expired');
  });

  it('verifies a token used by many calls at once once, and judges each waiting call by its own clock', async () => {
    const { verifier, token } = await fixture();
    const answers = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(token, NOW)));
    for (const a of answers) assert.ok(a.ok && a.value.txn === 'task-1');
    assert.equal(verifier.stats.coalesced, 9);
    const { verifier: fresh, token: other } = await fixture();
    const [early, late] = await Promise.all([fresh.verify(other, NOW), fresh.verify(other, NOW + 300 + 6)]);
    assert.ok(early.ok);
    assert.equal(!late.ok && late.code, 'token_expired');
    assert.equal(fresh.stats.coalesced, 1);
  });

  it('refuses a cached token once its signing key rotated out', async () => {
    const { keys, verifier, token } = await fixture();
    assert.ok((await verifier.verify(token, NOW)).ok);
    keys.rotate(10, NOW + 1);
    assert.ok((await verifier.verify(token, NOW + 5)).ok, 'still inside the overlap');
    const after = await verifier.verify(token, NOW + 12);
    assert.equal(after.ok, false);
    assert.equal(!after.ok && after.code, 'invalid_token');
  });

  it('does not take a token with a changed signature for the cached one', async () => {
    const { verifier, token } = await fixture();
    assert.ok((await verifier.verify(token, NOW)).ok);
    const sig = token.slice(token.lastIndexOf('.') + 1);
    const flipped = `${token.slice(0, token.lastIndexOf('.') + 1)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    const out = await verifier.verify(flipped, NOW);
    assert.equal(out.ok, false);
    assert.equal(!out.ok && out.code, 'invalid_token');
  });

  it('does not take another header or payload under the cached token\'s signature for it', async () => {
    // The cache finds a token by its signature segment: one that carries a cached token's
    // signature over other claims (another task, another workload) must be verified, and refused.
    const { verifier, token } = await fixture();
    assert.ok((await verifier.verify(token, NOW)).ok);
    const [header, payload, sig] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = [
      `${header}.${Buffer.from(JSON.stringify({ ...claims, txn: 'task-2' })).toString('base64url')}.${sig}`,
      `${header}.${Buffer.from(JSON.stringify({ ...claims, req_wl: 'spiffe://example.org/b' })).toString('base64url')}.${sig}`,
      `${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(header, 'base64url').toString('utf8')), x: 1 })).toString('base64url')}.${payload}.${sig}`,
      `${header}.${payload}x.${sig}`,
    ];
    for (const f of forged) {
      const out = await verifier.verify(f, NOW);
      assert.equal(out.ok, false, f);
      assert.equal(!out.ok && out.code, 'invalid_token');
    }
    // The genuine token is still served (a forgery did not evict it or take its place).
    const again = await verifier.verify(token, NOW);
    assert.ok(again.ok && again.value.txn === 'task-1');
  });
});
