// JWT-SVID verification (SPIFFE JWT-SVID standard), with jose doing the signature and claim
// checks. Order matters: everything that can be refused without cryptography is refused first,
// and the key is chosen from the bundle of the trust domain named by `sub`, so a key of trust
// domain A never vouches for an ID in trust domain B.
//   §2   compact JWS only (3 parts; a JWE has 5, JSON serialization starts with "{")
//   §2.1 alg: RS/ES/PS 256/384/512; never "none" or HMAC
//   §2.2 typ, when present: "JWT" or "JOSE"; kid required (as the reference libraries do)
//   §3   sub (a SPIFFE ID), aud (must contain a configured audience), exp required
// Verified tokens are cached (core/cache.ts TokenCache: a hit only for the very same token) until
// the earlier of exp and the next bundle change, so a workload presenting the same token pays for
// the signature once; concurrent first uses of one token share one verification (core/cache.ts
// InFlight).

import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { JwtSvidConfig } from '../config/identity.js';
import { deny, ok, type Outcome } from '../core/reasons.js';
import { InFlight, TokenCache } from '../core/cache.js';
import type { MaybePromise } from '../core/maybe.js';
import type { BundleSet } from './bundles.js';
import { parseSpiffeId, } from '../core/spiffe-id.js';
import type { JwtSvid } from '../core/identity.js';

export const JWT_SVID_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
const ALLOWED_ALGS = new Set(JWT_SVID_ALGORITHMS);
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;


export interface JwtCacheStats {
  hits: number;
  misses: number;
  /** First uses that waited for the verification of the same token already in flight. */
  readonly coalesced: number;
}

interface CacheEntry {
  readonly svid: JwtSvid;
  readonly generation: number;
}

function invalid(reason: string): Outcome<JwtSvid> {
  return deny('invalid_token', `JWT-SVID refused: ${reason}`);
}

export class JwtSvidVerifier {
  private readonly cache: TokenCache<CacheEntry>;
  private readonly inFlight = new InFlight<Outcome<JwtSvid>>();
  readonly stats: JwtCacheStats;

  constructor(
    private readonly config: JwtSvidConfig,
    private readonly bundles: BundleSet,
    private readonly trustDomains: ReadonlySet<string>,
  ) {
    this.cache = new TokenCache(config.cacheSize);
    const inFlight = this.inFlight;
    this.stats = {
      hits: 0,
      misses: 0,
      get coalesced() {
        return inFlight.joined;
      },
    };
  }

  /** A cached token's answer at once; a token seen for the first time is verified asynchronously. */
  verify(token: string, nowSeconds: number): MaybePromise<Outcome<JwtSvid>> {
    // Refuse oversized input before looking it up or parsing anything.
    if (token.length > this.config.maxTokenBytes) return invalid(`longer than ${this.config.maxTokenBytes} bytes`);
    const cached = this.cache.get(token);
    if (cached !== undefined) {
      if (cached.generation === this.bundles.generation && nowSeconds <= cached.svid.exp + this.config.clockSkewSeconds) {
        this.stats.hits++;
        return ok(cached.svid);
      }
      this.cache.delete(token);
    }
    const generation = this.bundles.generation;
    return this.inFlight.share(
      token,
      generation,
      () => {
        this.stats.misses++;
        return this.verifyUncached(token, nowSeconds).then((verified) => {
          if (verified.ok) this.cache.set(token, { svid: verified.value, generation });
          return verified;
        });
      },
      // A call that waited: checked against its own clock as a cache hit is; a token that
      // expired in between is verified afresh (and refused as expired).
      (verified) => (!verified.ok || nowSeconds <= verified.value.exp + this.config.clockSkewSeconds ? verified : this.verifyUncached(token, nowSeconds)),
    );
  }

  private async verifyUncached(token: string, nowSeconds: number): Promise<Outcome<JwtSvid>> {
    if (token.startsWith('{')) return invalid('JSON serialization is not allowed, only compact');
    if (!COMPACT_JWS.test(token)) {
      return token.split('.').length === 5 ? invalid('a JWE is not a JWT-SVID') : invalid('not a compact JWS');
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: ReturnType<typeof decodeJwt>;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch {
      return invalid('header or claims are not valid base64url JSON');
    }
    if (typeof header.alg !== 'string' || !ALLOWED_ALGS.has(header.alg)) return invalid(`alg "${String(header.alg)}" is not allowed`);
    if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') return invalid(`typ "${String(header.typ)}" is not JWT or JOSE`);
    if (typeof header.kid !== 'string' || header.kid === '') return invalid('no kid in the header');
    if (typeof claims.sub !== 'string') return invalid('no sub claim');
    const sub = parseSpiffeId(claims.sub);
    if (!sub.ok) return invalid('sub is not a valid SPIFFE ID');
    const trustDomain = sub.value.trustDomain;
    if (!this.trustDomains.has(trustDomain)) return deny('untrusted_domain', `JWT-SVID for trust domain "${trustDomain}", which is not configured in trustDomains`);
    const keys = this.bundles.keysFor(trustDomain);
    if (keys === undefined) return invalid(`no JWT-SVID bundle for trust domain "${trustDomain}"`);
    const publicKey = keys.get(header.kid);
    if (publicKey === undefined) return invalid(`kid "${header.kid}" is not in the bundle of trust domain "${trustDomain}"`);
    try {
      const { payload } = await jwtVerify(token, publicKey, {
        algorithms: JWT_SVID_ALGORITHMS,
        audience: [...this.config.audiences],
        clockTolerance: this.config.clockSkewSeconds,
        currentDate: new Date(nowSeconds * 1000),
        requiredClaims: ['sub', 'aud', 'exp'],
      });
      const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
      // NumericDate may have a fraction (RFC 7519 §2); Cedar longs may not.
      const exp = Math.floor(payload.exp as number);
      const iat = typeof payload.iat === 'number' ? Math.floor(payload.iat) : null;
      const max = this.config.maxLifetimeSeconds;
      if (max !== null && exp - (iat ?? nowSeconds) > max) return invalid(`lifetime is longer than ${max} s (identity.jwtSvid.maxLifetimeSeconds)`);
      return ok({ spiffe: sub.value, aud, exp, iat });
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return deny('token_expired', 'JWT-SVID has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) return invalid(`claim "${err.claim}" ${err.reason === 'check_failed' ? 'failed its check' : 'is missing'}`);
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalid('signature does not verify');
      return invalid((err as Error).message);
    }
  }
}
