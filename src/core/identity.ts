// Who a request comes from, as the identify stage (check/identify.ts) establishes it: part of
// the decision vocabulary every layer may use.

import type { SpiffeId } from './spiffe-id.js';

/** A verified JWT-SVID (identity/jwt-svid.ts). */
export interface JwtSvid {
  readonly spiffe: SpiffeId;
  readonly aud: readonly string[];
  readonly exp: number;
  readonly iat: number | null;
}

export type IdentityKind = 'x509' | 'xfcc' | 'jwt-svid';

export type Identity =
  | { readonly kind: 'anonymous' }
  | { readonly kind: IdentityKind; readonly spiffe: SpiffeId; readonly jwt: JwtSvid | null };

export const ANONYMOUS: Identity = Object.freeze({ kind: 'anonymous' });
