// Stage 2: who is calling, proven cryptographically, never taken from a header a client can set.
// Sources, in the order they are read:
//   1. the mTLS peer: attributes.source.principal (Envoy: the first URI SAN of the client
//      certificate), a strict SPIFFE ID; with include_peer_certificate, the certificate itself
//      is checked against the X.509-SVID rules and must carry exactly that ID;
//   2. x-forwarded-client-cert, only when the peer is a hop the config trusts; then the last
//      element (added by that hop) names the real client and replaces the peer's identity;
//      from any other peer the header is ignored and counted;
//   3. a JWT-SVID in the configured header, verified against the trust bundle of its sub.
// When the transport identity (1 or 2) and the JWT-SVID name different workloads, the request
// is denied with identity_conflict unless identity.precedence names the winner.

import { BlockList, isIP } from 'node:net';
import type { MandateConfig } from '../config/types.js';
import type { BundleSet } from '../identity/bundles.js';
import { JwtSvidVerifier } from '../identity/jwt-svid.js';
import { parseSpiffeId, type SpiffeId } from '../core/spiffe-id.js';
import { X509SvidChecker } from '../identity/x509.js';
import { parseXfcc } from '../identity/xfcc.js';
import type { DecodedRequest } from './decode.js';
import { deny, ok, type Outcome } from '../core/reasons.js';
import type { JwtSvid } from '../core/identity.js';
import { ANONYMOUS, type Identity } from '../core/identity.js';

const XFCC = 'x-forwarded-client-cert';
const BEARER = /^bearer\s+/i;

export interface IdentityStats {
  /** XFCC headers seen from peers that are not trusted hops: ignored, never believed. */
  xfccIgnored: number;
}

type Transport = { readonly kind: 'x509' | 'xfcc'; readonly spiffe: SpiffeId } | null;

/** An mTLS peer's principal as read (parsed, its trust domain checked), and its identity without a JWT-SVID. */
interface PeerReading {
  readonly transport: Outcome<NonNullable<Transport>>;
  readonly identity: Outcome<Identity>;
}

/** Peers whose reading is kept: a mesh has a bounded set of workloads; past it the memo starts over. */
const PEERS_KEPT = 1024;

export class Identifier {
  readonly stats: IdentityStats = { xfccIgnored: 0 };
  readonly jwt: JwtSvidVerifier | null;
  readonly certificates = new X509SvidChecker();
  private readonly trustDomains: ReadonlySet<string>;
  private readonly trustedHops: ReadonlySet<string>;
  private readonly trustedAddresses: BlockList | null;
  private readonly jwtHeader: string | null;
  private readonly precedence: MandateConfig['identity']['precedence'];
  /** principal -> its reading (a pure function of the principal and trustDomains): one parse per peer, not per Check. */
  private readonly peers = new Map<string, PeerReading>();

  constructor(config: Pick<MandateConfig, 'trustDomains' | 'identity'>, bundles: BundleSet | null) {
    this.trustDomains = new Set(config.trustDomains);
    const id = config.identity;
    this.trustedHops = new Set(id.xfcc.trustedPeers);
    this.trustedAddresses = id.xfcc.trustedAddresses.length === 0 ? null : blockList(id.xfcc.trustedAddresses);
    this.jwt = id.jwtSvid !== null && bundles !== null ? new JwtSvidVerifier(id.jwtSvid, bundles, this.trustDomains) : null;
    this.jwtHeader = id.jwtSvid?.header ?? null;
    this.precedence = id.precedence;
  }

  /** `nowSeconds`: Mandate's own clock. Tokens are never judged at the time a request claims
   *  (attributes.request.time): a backdated CheckRequest would pass an expired token. */
  identify(request: DecodedRequest, nowSeconds: number): Outcome<Identity> | Promise<Outcome<Identity>> {
    const transport = this.transport(request);
    if (!transport.ok) return transport;
    const token = this.token(request);
    if (token === null || this.jwt === null) {
      if (transport.value === null) return ok(ANONYMOUS);
      // The mTLS peer itself (not a forwarded client): its identity was built with its reading.
      const peer = transport.value.kind === 'x509' ? this.peers.get(request.source.principal) : undefined;
      return peer?.transport.ok && peer.transport.value === transport.value ? peer.identity : ok({ ...transport.value, jwt: null });
    }
    const peer = transport.value;
    const verified = this.jwt.verify(token, nowSeconds);
    if (verified instanceof Promise) return verified.then((v) => (v.ok ? this.combine(peer, v.value) : v));
    return verified.ok ? this.combine(peer, verified.value) : verified;
  }

  private transport(request: DecodedRequest): Outcome<Transport> {
    const { principal, certificate, address } = request.source;
    let transport: Transport = null;
    if (principal !== '') {
      const peer = this.peer(principal).transport;
      if (!peer.ok) return peer;
      if (certificate !== '') {
        const svid = this.certificates.check(certificate, principal);
        if (!svid.ok) return svid;
      }
      transport = peer.value;
    }
    const xfcc = request.headers.get(XFCC);
    if (xfcc === undefined) return ok(transport);
    const fromTrustedHop = (principal !== '' && this.trustedHops.has(principal)) || (this.trustedAddresses !== null && address !== '' && checkAddress(this.trustedAddresses, address));
    if (!fromTrustedHop) {
      this.stats.xfccIgnored++;
      return ok(transport);
    }
    const elements = parseXfcc(xfcc);
    if (elements === null) return deny('invalid_identity', 'x-forwarded-client-cert from a trusted hop is malformed');
    const uris = (elements[elements.length - 1] as (typeof elements)[number]).values('URI');
    if (uris.length !== 1) return deny('invalid_identity', `x-forwarded-client-cert names ${uris.length} URIs for the client, must name exactly one`);
    const client = this.trusted(parseSpiffeId(uris[0] as string));
    if (!client.ok) return client;
    return ok({ kind: 'xfcc', spiffe: client.value });
  }

  private peer(principal: string): PeerReading {
    let reading = this.peers.get(principal);
    if (reading === undefined) {
      const parsed = this.trusted(parseSpiffeId(principal));
      const transport = parsed.ok ? Object.freeze({ kind: 'x509' as const, spiffe: Object.freeze(parsed.value) }) : null;
      reading = Object.freeze({
        transport: Object.freeze(transport === null ? parsed : ok(transport)) as Outcome<NonNullable<Transport>>,
        identity: Object.freeze(transport === null ? parsed : ok(Object.freeze({ ...transport, jwt: null }))) as Outcome<Identity>,
      });
      if (this.peers.size >= PEERS_KEPT) this.peers.clear();
      this.peers.set(principal, reading);
    }
    return reading;
  }

  private trusted(parsed: Outcome<SpiffeId>): Outcome<SpiffeId> {
    if (parsed.ok && !this.trustDomains.has(parsed.value.trustDomain)) {
      return deny('untrusted_domain', `trust domain "${parsed.value.trustDomain}" is not configured in trustDomains`);
    }
    return parsed;
  }

  /** The JWT-SVID presented, or null when none is. A non-Bearer authorization is not ours. */
  private token(request: DecodedRequest): string | null {
    if (this.jwtHeader === null) return null;
    const value = request.headers.get(this.jwtHeader);
    if (value === undefined) return null;
    if (this.jwtHeader !== 'authorization') return value.trim();
    // One match, then a slice: replace() with the pattern ran it a second time and built the rest anew.
    const bearer = BEARER.exec(value);
    return bearer === null ? null : value.slice(bearer[0].length).trim();
  }

  private combine(transport: Transport, jwt: JwtSvid): Outcome<Identity> {
    const fromJwt: Identity = { kind: 'jwt-svid', spiffe: jwt.spiffe, jwt };
    if (transport === null) return ok(fromJwt);
    if (transport.spiffe.id === jwt.spiffe.id) {
      return ok(this.precedence === 'jwt-svid' ? fromJwt : { ...transport, jwt });
    }
    if (this.precedence === 'jwt-svid') return ok(fromJwt);
    if (this.precedence === 'x509') return ok({ ...transport, jwt: null });
    return deny('identity_conflict', `the ${transport.kind === 'x509' ? 'mTLS peer' : 'forwarded client certificate'} is ${transport.spiffe.id} but the JWT-SVID is for ${jwt.spiffe.id}`);
  }
}

function blockList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [ip, bits] = entry.split('/') as [string, string | undefined];
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, family);
    else list.addSubnet(ip, Number(bits), family);
  }
  return list;
}

function checkAddress(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}
