// JWT-SVID verification: every attack in the identity issue is refused with its exact code.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CompactEncrypt, FlattenedSign } from 'jose';
import type { JwtSvidConfig } from '../../src/config/identity.js';
import { newKeyPair } from '../../src/core/keygen.js';
import { BundleSet } from '../../src/identity/bundles.js';
import { JwtSvidVerifier } from '../../src/identity/jwt-svid.js';
import { handMade, hmacWithPublicKey, makeKey, makeTrustDomain, mint, signRaw } from '../helpers/jwt.js';

const A = makeTrustDomain('example.org', ['ES256', 'RS256']);
const B = makeTrustDomain('partner.org', ['ES256']);
const AGENT = 'spiffe://example.org/ns/support/sa/support-agent';
const PARTNER = 'spiffe://partner.org/ns/billing/sa/billing-agent';
const CONFIG: JwtSvidConfig = { header: 'authorization', audiences: ['mandate'], clockSkewSeconds: 30, maxTokenBytes: 8192, cacheSize: 100, maxLifetimeSeconds: null };

function verifier(config: Partial<JwtSvidConfig> = {}): { v: JwtSvidVerifier; bundles: BundleSet; pathA: string } {
  const pathA = A.writeBundle();
  const bundles = BundleSet.open([
    { trustDomain: 'example.org', kind: 'file', path: pathA },
    { trustDomain: 'partner.org', kind: 'file', path: B.writeBundle() },
  ]);
  return { v: new JwtSvidVerifier({ ...CONFIG, ...config }, bundles, new Set(['example.org', 'partner.org'])), bundles, pathA };
}

const now = (): number => Math.floor(Date.now() / 1000);
const es = A.keys[0]!;
const rs = A.keys[1]!;
const partnerKey = B.keys[0]!;

describe('JwtSvidVerifier accepts', () => {
  const { v } = verifier();
  const good: [string, () => Promise<string>, string][] = [
    ['an ES256 token from its trust domain', () => mint({ key: es, sub: AGENT }), AGENT],
    ['an RS256 token from its trust domain', () => mint({ key: rs, sub: AGENT }), AGENT],
    ['a token for another trust domain, signed by that domain', () => mint({ key: partnerKey, sub: PARTNER }), PARTNER],
    ['an audience list that contains ours', () => mint({ key: es, sub: AGENT, aud: ['other', 'mandate'] }), AGENT],
    ['typ JOSE', () => mint({ key: es, sub: AGENT, header: { typ: 'JOSE' } }), AGENT],
    ['no typ', () => mint({ key: es, sub: AGENT, header: { typ: undefined } }), AGENT],
    ['a token expired by less than the clock skew', () => mint({ key: es, sub: AGENT, expiresIn: -10 }), AGENT],
  ];
  for (const [name, token, sub] of good) {
    it(name, async () => {
      const r = await v.verify(await token(), now());
      assert.ok(r.ok, !r.ok ? r.message : '');
      assert.equal(r.value.spiffe.id, sub);
    });
  }
});

describe('JwtSvidVerifier refuses', () => {
  const { v } = verifier();
  const claims = (): Record<string, unknown> => ({ sub: AGENT, aud: 'mandate', exp: now() + 300, iat: now() });
  const attacks: [string, () => Promise<string> | string, string, string][] = [
    ['alg none (empty signature)', () => handMade({ alg: 'none', typ: 'JWT', kid: es.kid }, claims()), 'invalid_token', 'JWT-SVID refused: not a compact JWS'],
    ['alg none with a signature part', () => handMade({ alg: 'none', kid: es.kid }, claims(), 'AAAA'), 'invalid_token', 'JWT-SVID refused: alg "none" is not allowed'],
    ['HS256 signed with the public key as the secret', () => hmacWithPublicKey(es, claims()), 'invalid_token', 'JWT-SVID refused: alg "HS256" is not allowed'],
    ['a token for partner.org signed by an example.org key', () => mint({ key: es, sub: PARTNER }), 'invalid_token', `JWT-SVID refused: kid "${es.kid}" is not in the bundle of trust domain "partner.org"`],
    ['a partner.org kid on a signature by an example.org key', () => mint({ key: { ...es, kid: partnerKey.kid }, sub: PARTNER }), 'invalid_token', 'JWT-SVID refused: signature does not verify'],
    ['an unknown kid', () => mint({ key: { ...es, kid: 'no-such-key' }, sub: AGENT }), 'invalid_token', 'JWT-SVID refused: kid "no-such-key" is not in the bundle of trust domain "example.org"'],
    ['no kid while the bundle has several keys', () => mint({ key: es, sub: AGENT, omit: ['kid'] }), 'invalid_token', 'JWT-SVID refused: no kid in the header'],
    ['an expired token', () => mint({ key: es, sub: AGENT, expiresIn: -120 }), 'token_expired', 'JWT-SVID has expired'],
    ['nbf in the future', () => mint({ key: es, sub: AGENT, notBeforeIn: 600 }), 'invalid_token', 'JWT-SVID refused: claim "nbf" failed its check'],
    ['a wrong audience', () => mint({ key: es, sub: AGENT, aud: 'someone-else' }), 'invalid_token', 'JWT-SVID refused: claim "aud" failed its check'],
    ['no audience', () => mint({ key: es, sub: AGENT, omit: ['aud'] }), 'invalid_token', 'JWT-SVID refused: claim "aud" is missing'],
    ['no exp', () => mint({ key: es, sub: AGENT, omit: ['exp'] }), 'invalid_token', 'JWT-SVID refused: claim "exp" is missing'],
    ['no sub', () => mint({ key: es, omit: ['sub'] }), 'invalid_token', 'JWT-SVID refused: no sub claim'],
    ['a sub that is not a SPIFFE ID', () => mint({ key: es, sub: 'support-agent@example.org' }), 'invalid_token', 'JWT-SVID refused: sub is not a valid SPIFFE ID'],
    ['a sub in a trust domain that is not configured', () => mint({ key: es, sub: 'spiffe://evil.example/agent' }), 'untrusted_domain', 'JWT-SVID for trust domain "evil.example", which is not configured in trustDomains'],
    ['typ txntoken+jwt (a transaction token is not a JWT-SVID)', () => mint({ key: es, sub: AGENT, header: { typ: 'txntoken+jwt' } }), 'invalid_token', 'JWT-SVID refused: typ "txntoken+jwt" is not JWT or JOSE'],
    ['a crit header with an unknown extension', () => signRaw(es, { alg: 'ES256', typ: 'JWT', kid: es.kid, crit: ['x-unknown'], 'x-unknown': 1 }, claims()), 'invalid_token', 'JWT-SVID refused: Extension Header Parameter "x-unknown" is not recognized'],
    ['a JWE', async () => {
      const { publicKey } = newKeyPair({ type: 'rsa', modulusLength: 2048 });
      return new CompactEncrypt(Buffer.from(JSON.stringify(claims()))).setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: es.kid }).encrypt(publicKey);
    }, 'invalid_token', 'JWT-SVID refused: a JWE is not a JWT-SVID'],
    ['JSON serialization', async () => JSON.stringify(await new FlattenedSign(Buffer.from(JSON.stringify(claims()))).setProtectedHeader({ alg: 'ES256', kid: es.kid }).sign(es.privateKey)), 'invalid_token', 'JWT-SVID refused: JSON serialization is not allowed, only compact'],
    ['garbage base64', () => 'eyJ%%%.###.!!!', 'invalid_token', 'JWT-SVID refused: not a compact JWS'],
    ['base64url that is not JSON', () => 'bm90IGpzb24.bm90IGpzb24.c2ln', 'invalid_token', 'JWT-SVID refused: header or claims are not valid base64url JSON'],
    ['a 100 KB token', async () => `${await mint({ key: es, sub: AGENT })}${'A'.repeat(100 * 1024)}`, 'invalid_token', 'JWT-SVID refused: longer than 8192 bytes'],
    ['a signature from a key not in any bundle', () => mint({ key: { ...makeKey('x'), kid: es.kid }, sub: AGENT }), 'invalid_token', 'JWT-SVID refused: signature does not verify'],
    ['a tampered payload', async () => {
      const [h, , s] = (await mint({ key: es, sub: AGENT })).split('.');
      return `${h}.${Buffer.from(JSON.stringify({ ...claims(), sub: PARTNER })).toString('base64url')}.${s}`;
    }, 'invalid_token', `JWT-SVID refused: kid "${es.kid}" is not in the bundle of trust domain "partner.org"`],
  ];
  for (const [name, token, code, message] of attacks) {
    it(name, async () => {
      assert.deepEqual(await v.verify(await token(), now()), { ok: false, code, message });
    });
  }
});

describe('JwtSvidVerifier cache', () => {
  it('verifies a token once, then serves it from the cache', async () => {
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    for (let i = 0; i < 5; i++) assert.ok((await v.verify(token, now())).ok);
    assert.deepEqual(v.stats, { hits: 4, misses: 1, coalesced: 0 });
  });

  it('does not serve a cached token past its exp', async () => {
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT, expiresIn: 60 });
    assert.ok((await v.verify(token, now())).ok);
    assert.deepEqual(await v.verify(token, now() + 60 + 31), { ok: false, code: 'token_expired', message: 'JWT-SVID has expired' });
  });

  it('drops cached verifications when the bundle changes: a removed key stops vouching at once', async () => {
    const { v, bundles, pathA } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    assert.ok((await v.verify(token, now())).ok);
    const rotated = makeTrustDomain('example.org', ['ES256']);
    writeFileSync(pathA, rotated.bundle());
    bundles.reloadFiles();
    const r = await v.verify(token, now());
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'invalid_token');
  });

  it('does not take another header or payload under a cached token\'s signature for it', async () => {
    // The cache finds a token by its signature segment: the same signature over another sub
    // or audience must be verified (and refused), never answered from the cache.
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    assert.ok((await v.verify(token, now())).ok);
    const [header, payload, sig] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    for (const changed of [{ sub: PARTNER }, { sub: `${AGENT}-other` }, { aud: 'elsewhere' }]) {
      const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, ...changed })).toString('base64url')}.${sig}`;
      const r = await v.verify(forged, now());
      assert.equal(r.ok, false, JSON.stringify(changed));
    }
    assert.deepEqual(v.stats, { hits: 0, misses: 4, coalesced: 0 });
    const again = await v.verify(token, now());
    assert.ok(again.ok && again.value.spiffe.id === AGENT);
    assert.deepEqual(v.stats, { hits: 1, misses: 4, coalesced: 0 });
  });

  it('keeps at most cacheSize entries', async () => {
    const { v } = verifier({ cacheSize: 2 });
    const tokens = await Promise.all([1, 2, 3].map((i) => mint({ key: es, sub: `${AGENT}-${i}` })));
    for (const t of tokens) await v.verify(t, now());
    await v.verify(tokens[0]!, now()); // evicted: a miss
    await v.verify(tokens[2]!, now()); // still there: a hit
    assert.deepEqual(v.stats, { hits: 1, misses: 4, coalesced: 0 });
  });
});

describe('JwtSvidVerifier, one token used by many calls at once', () => {
  it('verifies it once: the other first uses wait for that verification', async () => {
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    const answers = await Promise.all(Array.from({ length: 20 }, () => v.verify(token, now())));
    for (const a of answers) assert.ok(a.ok && a.value.spiffe.id === AGENT);
    assert.deepEqual(v.stats, { hits: 0, misses: 1, coalesced: 19 });
    assert.ok((await v.verify(token, now())).ok);
    assert.deepEqual(v.stats, { hits: 1, misses: 1, coalesced: 19 }, 'then served from the cache');
  });

  it('refuses a bad one for every call that waited, and verifies it again when it comes back', async () => {
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    const sig = token.slice(token.lastIndexOf('.') + 1);
    const forged = `${token.slice(0, token.lastIndexOf('.') + 1)}${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    const answers = await Promise.all(Array.from({ length: 5 }, () => v.verify(forged, now())));
    for (const a of answers) assert.deepEqual(a, { ok: false, code: 'invalid_token', message: 'JWT-SVID refused: signature does not verify' });
    assert.deepEqual(v.stats, { hits: 0, misses: 1, coalesced: 4 });
    assert.equal((await v.verify(forged, now())).ok, false);
    assert.deepEqual(v.stats, { hits: 0, misses: 2, coalesced: 4 }, 'a refusal is not kept');
  });

  it('judges a waiting call by its own clock: past exp it is token_expired', async () => {
    const { v } = verifier();
    const token = await mint({ key: es, sub: AGENT, expiresIn: 60 });
    const [early, late] = await Promise.all([v.verify(token, now()), v.verify(token, now() + 60 + 31)]);
    assert.ok(early.ok);
    assert.deepEqual(late, { ok: false, code: 'token_expired', message: 'JWT-SVID has expired' });
    assert.equal(v.stats.coalesced, 1);
  });

  it('does not join a verification started before the bundle changed', async () => {
    const { v, bundles, pathA } = verifier();
    const token = await mint({ key: es, sub: AGENT });
    const before = v.verify(token, now());
    writeFileSync(pathA, makeTrustDomain('example.org', ['ES256']).bundle());
    bundles.reloadFiles();
    const after = await v.verify(token, now());
    assert.ok((await before).ok, 'verified with the key it started with');
    // Verified afresh against the new bundle, whose key of the same kid did not sign it.
    assert.deepEqual(after, { ok: false, code: 'invalid_token', message: 'JWT-SVID refused: signature does not verify' });
    assert.deepEqual(v.stats, { hits: 0, misses: 2, coalesced: 0 });
  });
});

describe('JwtSvidVerifier with maxLifetimeSeconds', () => {
  const { v } = verifier({ maxLifetimeSeconds: 600 });

  it('refuses a token that lives longer than the maximum', async () => {
    const r = await v.verify(await mint({ key: es, sub: AGENT, expiresIn: 3600 }), now());
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, 'invalid_token');
    assert.match(!r.ok ? (r.message ?? '') : '', /lifetime is longer than 600 s/);
  });

  it('accepts one within it, and judges a token without iat by the time left', async () => {
    assert.equal((await v.verify(await mint({ key: es, sub: AGENT, expiresIn: 300 }), now())).ok, true);
    const noIat = signRaw(es, { alg: 'ES256', kid: es.kid }, { sub: AGENT, aud: 'mandate', exp: now() + 3600 });
    const r = await v.verify(noIat, now());
    assert.equal(!r.ok && r.code, 'invalid_token');
  });

  it('gives whole seconds for a fractional exp and iat (Cedar longs)', async () => {
    const t = now();
    const token = signRaw(es, { alg: 'ES256', kid: es.kid }, { sub: AGENT, aud: 'mandate', iat: t + 0.5, exp: t + 120.75 });
    const r = await v.verify(token, t);
    assert.ok(r.ok, !r.ok ? r.message : '');
    assert.equal(r.value.exp, t + 120);
    assert.equal(r.value.iat, t);
  });
});
