// Stage 2: who is calling. Today: the mTLS peer as Envoy reports it in
// attributes.source.principal (the first URI SAN of the client certificate), parsed strictly as
// a SPIFFE ID. JWT-SVIDs, XFCC from trusted hops and task tokens plug in here as further sources.

import { parseSpiffeId, type SpiffeId } from '../identity/spiffe-id.js';
import type { DecodedRequest } from './decode.js';
import { deny, ok, type Outcome } from './reasons.js';

export type Identity =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'x509'; readonly spiffe: SpiffeId };

export const ANONYMOUS: Identity = Object.freeze({ kind: 'anonymous' });

export interface IdentifyOptions {
  readonly trustDomains: ReadonlySet<string>;
}

export function identify(request: DecodedRequest, options: IdentifyOptions): Outcome<Identity> {
  const principal = request.source.principal;
  if (principal === '') return ok(ANONYMOUS);
  const parsed = parseSpiffeId(principal);
  if (!parsed.ok) return parsed;
  if (!options.trustDomains.has(parsed.value.trustDomain)) {
    return deny('untrusted_domain', `trust domain "${parsed.value.trustDomain}" is not configured in trustDomains`);
  }
  return ok({ kind: 'x509', spiffe: parsed.value });
}
