// Transaction tokens (IETF draft-ietf-oauth-transaction-tokens): short-lived JWTs that bind a
// request chain to one task. Header typ "txntoken+jwt", an asymmetric alg and a kid (§4.1);
// claims iat, exp, aud (the trust domain), txn (the task id), sub, scope (the purpose),
// req_wl (the requesting workload), tctx (immutable authorization details), rctx (request
// context), and RFC 8693 act for delegation. Carried in the Txn-Token header.

import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { deny, ok, type Outcome } from '../core/reasons.js';
import { InFlight, TokenCache } from '../core/cache.js';
import type { MaybePromise } from '../core/maybe.js';
import { TASK_TOKEN_ALG, type KeyRing } from './task-keys.js';

export const TXN_TOKEN_TYP = 'txntoken+jwt';
export const TXN_TOKEN_HEADER = 'txn-token';
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_TOKEN_CHARS = 16 * 1024;
/** Seconds of clock skew allowed on exp (and iat), here and on a cached token's recheck. */
const CLOCK_TOLERANCE_S = 5;

export interface Actor {
  readonly sub: string;
  readonly act?: Actor;
}

export interface TxnClaims {
  readonly txn: string;
  readonly sub: string;
  readonly req_wl: string;
  readonly scope: string;
  readonly tctx: { readonly tenant: string; readonly tools: readonly string[]; readonly maxCalls: number | null; readonly parent: string | null };
  readonly rctx: { readonly authn: string };
  readonly act?: Actor;
  readonly iat: number;
  readonly exp: number;
}

export interface TxnTokenOptions {
  readonly issuer: string;
  readonly audience: string;
}

export async function issueTxnToken(keys: KeyRing, options: TxnTokenOptions, claims: Omit<TxnClaims, 'iat'>, now: number): Promise<string> {
  const key = keys.signingKey();
  if (key === null) throw new Error('no task signing key');
  const { exp, ...rest } = claims;
  return new SignJWT({ ...rest })
    .setProtectedHeader({ alg: TASK_TOKEN_ALG, typ: TXN_TOKEN_TYP, kid: key.kid })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(key.privateKey);
}

function invalid(reason: string): Outcome<TxnClaims> {
  return deny('invalid_token', `transaction token refused: ${reason}`);
}

export async function verifyTxnToken(token: string, keys: KeyRing, options: TxnTokenOptions, now: number): Promise<Outcome<TxnClaims>> {
  if (token.length > MAX_TOKEN_CHARS) return invalid('too long');
  if (!COMPACT_JWS.test(token)) return invalid('not a compact JWS');
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return invalid('header is not valid base64url JSON');
  }
  if (header.alg !== TASK_TOKEN_ALG) return invalid(`alg "${String(header.alg)}" is not ${TASK_TOKEN_ALG}`);
  if (header.typ !== TXN_TOKEN_TYP) return invalid(`typ must be "${TXN_TOKEN_TYP}"`);
  if (typeof header.kid !== 'string') return invalid('no kid');
  const key = keys.verificationKey(header.kid, now);
  if (key === null) return invalid('signed by a key that is unknown or rotated out');
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [TASK_TOKEN_ALG],
      typ: TXN_TOKEN_TYP,
      issuer: options.issuer,
      audience: options.audience,
      currentDate: new Date(now * 1000),
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ['txn', 'sub', 'req_wl', 'exp', 'iat', 'tctx'],
    });
    const tctx = payload['tctx'] as TxnClaims['tctx'] | undefined;
    if (typeof payload['txn'] !== 'string' || typeof payload['req_wl'] !== 'string' || typeof tctx?.tenant !== 'string' || !Array.isArray(tctx.tools)) {
      return invalid('claims do not have the expected shape');
    }
    return ok(payload as unknown as TxnClaims);
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return deny('token_expired', 'transaction token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) return invalid(`claim "${err.claim}" ${err.reason === 'check_failed' ? 'failed its check' : 'is missing'}`);
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalid('signature does not verify');
    return invalid((err as Error).message);
  }
}

/**
 * Verified transaction tokens, cached by the whole token (core/cache.ts TokenCache; an agent sends the same token
 * on every call of its task; an ES256 verification costs ~100 us). A hit is re-checked against
 * the clock and the key ring (a token whose key rotated out is verified afresh, and refused).
 * Whether the task is still live is never cached: the task stage asks the store every time.
 */
export class TxnTokenVerifier {
  private readonly cache: TokenCache<{ readonly claims: TxnClaims; readonly kid: string }>;
  /** Concurrent first uses of one token share its verification (a new task's parallel calls). */
  private readonly inFlight = new InFlight<Outcome<TxnClaims>>();

  /** First uses that waited for the verification of the same token already in flight. */
  get stats(): { readonly coalesced: number } {
    return { coalesced: this.inFlight.joined };
  }

  constructor(
    private readonly keys: KeyRing,
    private readonly options: TxnTokenOptions,
    size = 10_000,
  ) {
    this.cache = new TokenCache(size);
  }

  /** A cached token's answer at once; a token seen for the first time is verified asynchronously. */
  verify(token: string, now: number): MaybePromise<Outcome<TxnClaims>> {
    if (token.length > MAX_TOKEN_CHARS) return invalid('too long');
    const hit = this.cache.get(token);
    if (hit !== undefined) {
      // Same bound as jose's exp check with verifyTxnToken's tolerance.
      if (now < hit.claims.exp + CLOCK_TOLERANCE_S && this.keys.verificationKey(hit.kid, now) !== null) return ok(hit.claims);
      this.cache.delete(token);
    }
    return this.inFlight.share(
      token,
      0,
      () =>
        verifyTxnToken(token, this.keys, this.options, now).then((verified) => {
          if (verified.ok && this.cache.capacity > 0) this.cache.set(token, { claims: verified.value, kid: decodeProtectedHeader(token).kid as string });
          return verified;
        }),
      // A call that waited: re-checked against its own clock and the key ring as a cache hit is.
      (verified) =>
        !verified.ok || (now < verified.value.exp + CLOCK_TOLERANCE_S && this.keys.verificationKey(decodeProtectedHeader(token).kid as string, now) !== null)
          ? verified
          : verifyTxnToken(token, this.keys, this.options, now),
    );
  }
}
