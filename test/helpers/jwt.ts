// Trust domains with freshly generated JWT-SVID signing keys, their SPIFFE bundles, and a
// minter for tokens with whatever header and claims a test needs.

import { createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { newKeyPair } from '../../src/core/keygen.js';

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export interface TrustDomainKeys {
  readonly trustDomain: string;
  readonly keys: SigningKey[];
  /** SPIFFE bundle JSON: the JWT authorities with use "jwt-svid", plus an X.509 authority to skip. */
  bundle(): string;
  /** Writes the bundle to a fresh temp file and returns its path. */
  writeBundle(dir?: string): string;
}

export function makeKey(kid: string, alg: 'ES256' | 'RS256' | 'PS256' | 'ES384' = 'ES256'): SigningKey {
  const pair = newKeyPair(alg.startsWith('ES') ? { type: 'ec', namedCurve: alg === 'ES384' ? 'P-384' : 'P-256' } : { type: 'rsa', modulusLength: 2048 });
  return { kid, alg, ...pair };
}

export function makeTrustDomain(trustDomain: string, algs: ('ES256' | 'RS256' | 'PS256' | 'ES384')[] = ['ES256']): TrustDomainKeys {
  const keys = algs.map((alg, i) => makeKey(`${trustDomain}-key-${i}`, alg));
  const bundle = (): string =>
    JSON.stringify({
      keys: [
        ...keys.map((k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, use: 'jwt-svid' })),
        // An X.509 authority, as SPIRE bundles carry: must be ignored for JWT-SVIDs.
        { ...makeKey('x509-authority').publicKey.export({ format: 'jwk' }), use: 'x509-svid' },
      ],
      spiffe_sequence: 1,
      spiffe_refresh_hint: 300,
    });
  return {
    trustDomain,
    keys,
    bundle,
    writeBundle: (dir = mkdtempSync(join(tmpdir(), 'mandate-bundle-'))) => {
      const path = join(dir, `${trustDomain}.json`);
      writeFileSync(path, bundle());
      return path;
    },
  };
}

export interface MintOptions {
  key: SigningKey;
  sub?: string | undefined;
  aud?: string | string[] | undefined;
  expiresIn?: number;
  notBeforeIn?: number;
  header?: Record<string, unknown>;
  omit?: ('kid' | 'exp' | 'aud' | 'sub')[];
  now?: number;
}

export async function mint(options: MintOptions): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const omit = new Set(options.omit ?? []);
  const claims: Record<string, unknown> = { iat: now };
  if (!omit.has('sub')) claims['sub'] = options.sub;
  if (!omit.has('aud')) claims['aud'] = options.aud ?? 'mandate';
  if (!omit.has('exp')) claims['exp'] = now + (options.expiresIn ?? 300);
  if (options.notBeforeIn !== undefined) claims['nbf'] = now + options.notBeforeIn;
  const header: Record<string, unknown> = { alg: options.key.alg, typ: 'JWT', ...(omit.has('kid') ? {} : { kid: options.key.kid }), ...options.header };
  return new SignJWT(claims).setProtectedHeader(header as never).sign(options.key.privateKey);
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token built by hand: for algorithms and shapes that jose refuses to produce. */
export function handMade(header: Record<string, unknown>, claims: Record<string, unknown>, signature = ''): string {
  return `${b64(header)}.${b64(claims)}.${signature}`;
}

/** HS256 "signed" with the public key as the HMAC secret: the classic algorithm-confusion attack. */
export function hmacWithPublicKey(key: SigningKey, claims: Record<string, unknown>): string {
  const head = `${b64({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64(claims)}`;
  const secret = key.publicKey.export({ format: 'pem', type: 'spki' });
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** Signs any header and claims with an ES256 key, for headers jose will not produce. */
export function signRaw(key: SigningKey, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const head = `${b64(header)}.${b64(claims)}`;
  const signature = cryptoSign('sha256', Buffer.from(head), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${head}.${signature.toString('base64url')}`;
}
