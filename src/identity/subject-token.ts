// Subject tokens (RFC 8693 §2.1 subject_token): who a task acts for is not whatever the agent
// writes, but the `sub` of a JWT that an issuer listed in tasks.subjectIssuers signed for us.
// The agent runtime passes the user's token (an OIDC ID token or access token) with StartTask;
// Mandate verifies it with jose against that issuer's JWKS (a file, read at start): signature,
// iss, aud, exp/nbf by Mandate's own clock with the configured leeway, asymmetric algorithms only.

import { readFileSync } from 'node:fs';
import { createLocalJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JSONWebKeySet } from 'jose';
import type { SubjectIssuerConfig } from '../config/tasks.js';
import { deny, ok, type Outcome } from '../core/reasons.js';

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'];
const MAX_TOKEN_BYTES = 16384;

export interface VerifiedSubject {
  readonly sub: string;
  readonly iss: string;
}

export class SubjectTokenVerifier {
  private readonly issuers = new Map<string, { readonly config: SubjectIssuerConfig; readonly keys: ReturnType<typeof createLocalJWKSet> }>();

  /** Throws (a configuration error at start) when a JWKS file cannot be read. */
  constructor(configs: readonly SubjectIssuerConfig[], private readonly clockSkewSeconds = 30) {
    for (const config of configs) {
      const jwks = JSON.parse(readFileSync(config.jwks, 'utf8')) as JSONWebKeySet;
      this.issuers.set(config.issuer, { config, keys: createLocalJWKSet(jwks) });
    }
  }

  async verify(token: string, nowSeconds: number): Promise<Outcome<VerifiedSubject>> {
    if (this.issuers.size === 0) return deny('invalid_token', 'subject tokens are not accepted: no tasks.subjectIssuers are configured');
    if (token.length > MAX_TOKEN_BYTES) return deny('invalid_token', 'subject token is too long');
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return deny('invalid_token', 'subject token is not a JWT');
    }
    const issuer = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (issuer === undefined) return deny('invalid_token', 'subject token from an issuer not in tasks.subjectIssuers');
    try {
      const { payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuer.config.issuer,
        audience: issuer.config.audience,
        algorithms: ALGORITHMS,
        clockTolerance: this.clockSkewSeconds,
        currentDate: new Date(nowSeconds * 1000),
        requiredClaims: ['sub', 'exp'],
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') return deny('invalid_token', 'subject token has no sub');
      return ok({ sub: payload.sub, iss: issuer.config.issuer });
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return deny('token_expired', 'subject token has expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) return deny('invalid_token', `subject token claim "${err.claim}" ${err.reason === 'check_failed' ? 'failed its check' : 'is missing'}`);
      return deny('invalid_token', 'subject token does not verify');
    }
  }
}
