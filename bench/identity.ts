// Identity micro-benchmarks: JWT-SVID verification with a cache hit and a miss, for ES256 and
// RS256, and the X.509-SVID certificate check. Keys and certificates are generated per run
// (with the tests' certificate builder).

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BundleSet } from '../src/identity/bundles.js';
import { JwtSvidVerifier } from '../src/identity/jwt-svid.js';
import { checkX509Svid, X509SvidChecker } from '../src/identity/x509.js';
import { makeSvid } from '../test/helpers/certs.js';
import type { Op } from './stats.js';

const ID = 'spiffe://example.org/ns/support/sa/support-agent';

function b64(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

function token(alg: 'ES256' | 'RS256', kid: string, key: KeyObject): string {
  const now = Math.floor(Date.now() / 1000);
  const head = `${b64({ alg, typ: 'JWT', kid })}.${b64({ sub: ID, aud: 'mandate', iat: now, exp: now + 3600 })}`;
  const sig = sign('sha256', Buffer.from(head), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${head}.${sig.toString('base64url')}`;
}

export async function identityOps(): Promise<Record<string, Op>> {
  const es = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rs = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dir = mkdtempSync(join(tmpdir(), 'mandate-bench-'));
  const path = join(dir, 'bundle.json');
  writeFileSync(path, JSON.stringify({ keys: [
    { ...es.publicKey.export({ format: 'jwk' }), kid: 'es', use: 'jwt-svid' },
    { ...rs.publicKey.export({ format: 'jwk' }), kid: 'rs', use: 'jwt-svid' },
  ] }));
  const bundles = BundleSet.open([{ trustDomain: 'example.org', kind: 'file', path }]);
  const base = { header: 'authorization', audiences: ['mandate'], clockSkewSeconds: 30, maxTokenBytes: 8192 };
  const domains = new Set(['example.org']);
  const cached = new JwtSvidVerifier({ ...base, cacheSize: 1000 }, bundles, domains);
  const uncached = new JwtSvidVerifier({ ...base, cacheSize: 0 }, bundles, domains);
  const esToken = token('ES256', 'es', es.privateKey);
  const rsToken = token('RS256', 'rs', rs.privateKey);
  const now = (): number => Math.floor(Date.now() / 1000);
  for (const t of [esToken, rsToken]) {
    const r = await cached.verify(t, now());
    if (!r.ok) throw new Error(`bench token refused: ${r.message}`);
  }
  const cert = makeSvid(ID).urlEncoded;
  if (!checkX509Svid(cert, ID).ok) throw new Error('bench certificate refused');
  const checker = new X509SvidChecker();
  return {
    'jwt-svid ES256, cache hit': () => cached.verify(esToken, now()),
    'jwt-svid ES256, cache miss (verify)': () => uncached.verify(esToken, now()),
    'jwt-svid RS256, cache hit': () => cached.verify(rsToken, now()),
    'jwt-svid RS256, cache miss (verify)': () => uncached.verify(rsToken, now()),
    'x509-svid certificate check': () => checkX509Svid(cert, ID),
    'x509-svid certificate check, cached': () => checker.check(cert, ID),
  };
}
