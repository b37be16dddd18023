// The `identity` section: where workload identity may come from, besides the mTLS peer.

import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseSpiffeId } from '../core/spiffe-id.js';
import { ConfigError, expectObject, readBoolean, readInteger, readString, readStringList } from './fields.js';

export type BundleSource =
  | { readonly trustDomain: string; readonly kind: 'file'; readonly path: string }
  | {
      readonly trustDomain: string;
      readonly kind: 'url';
      readonly url: string;
      readonly refreshSeconds: number;
      readonly timeoutMs: number;
      readonly caFile: string | null;
    }
  /** The JWT bundle from the SPIFFE Workload API's FetchJWTBundles stream (config.workloadApi). */
  | { readonly trustDomain: string; readonly kind: 'workloadApi' };

export interface JwtSvidConfig {
  /** Request header carrying the token; for `authorization`, the Bearer scheme. */
  readonly header: string;
  /** The token's aud must contain one of these (JWT-SVID §3). */
  readonly audiences: readonly string[];
  readonly clockSkewSeconds: number;
  readonly maxTokenBytes: number;
  readonly cacheSize: number;
  /** Refuse tokens whose exp lies further than this past their iat (or past now, without iat); null: no maximum. */
  readonly maxLifetimeSeconds: number | null;
}

export interface IdentityConfig {
  readonly jwtSvid: JwtSvidConfig | null;
  readonly bundles: readonly BundleSource[];
  readonly xfcc: { readonly trustedPeers: readonly string[]; readonly trustedAddresses: readonly string[] };
  /** When the transport identity and the JWT-SVID name different workloads. */
  readonly precedence: 'none' | 'x509' | 'jwt-svid';
  readonly groups: readonly { readonly match: string; readonly group: string }[];
}

export const IDENTITY_DEFAULTS = Object.freeze({
  jwtHeader: 'authorization',
  clockSkewSeconds: 30,
  maxTokenBytes: 8192,
  cacheSize: 10_000,
  bundleRefreshSeconds: 300,
  bundleTimeoutMs: 2000,
  precedence: 'none' as const,
});

const GROUP_ENTITY = /^(?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*::"[^"\\]*"$/;

export function parseIdentityConfig(raw: unknown, baseDir: string, trustDomains: readonly string[]): IdentityConfig {
  const field = 'config.identity';
  const top = expectObject(raw ?? {}, field, ['jwtSvid', 'bundles', 'xfcc', 'precedence', 'groups']);

  let jwtSvid: JwtSvidConfig | null = null;
  if (top['jwtSvid'] !== undefined) {
    const f = `${field}.jwtSvid`;
    const j = expectObject(top['jwtSvid'], f, ['header', 'audiences', 'clockSkewSeconds', 'maxTokenBytes', 'cacheSize', 'maxLifetimeSeconds']);
    const audiences = readStringList(j, 'audiences', f, []);
    if (audiences.length === 0) throw new ConfigError(`${f}.audiences`, 'is required: list the audiences a JWT-SVID must be issued for');
    jwtSvid = Object.freeze({
      header: readString(j, 'header', f, IDENTITY_DEFAULTS.jwtHeader).toLowerCase(),
      audiences: Object.freeze([...audiences]),
      clockSkewSeconds: readInteger(j, 'clockSkewSeconds', f, IDENTITY_DEFAULTS.clockSkewSeconds, 0, 300),
      maxTokenBytes: readInteger(j, 'maxTokenBytes', f, IDENTITY_DEFAULTS.maxTokenBytes, 256, 65536),
      cacheSize: readInteger(j, 'cacheSize', f, IDENTITY_DEFAULTS.cacheSize, 0, 1_000_000),
      maxLifetimeSeconds: j['maxLifetimeSeconds'] === undefined ? null : readInteger(j, 'maxLifetimeSeconds', f, 0, 1, 31 * 24 * 3600),
    });
  }

  const bundlesRaw = top['bundles'] ?? [];
  if (!Array.isArray(bundlesRaw)) throw new ConfigError(`${field}.bundles`, 'must be a list');
  const seen = new Set<string>();
  const bundles = bundlesRaw.map((item: unknown, i): BundleSource => {
    const f = `${field}.bundles[${i}]`;
    const b = expectObject(item, f, ['trustDomain', 'file', 'url', 'workloadApi', 'refreshSeconds', 'timeoutMs', 'caFile']);
    const trustDomain = readString(b, 'trustDomain', f, '');
    if (!trustDomains.includes(trustDomain)) throw new ConfigError(`${f}.trustDomain`, `"${trustDomain}" is not in trustDomains`);
    if (seen.has(trustDomain)) throw new ConfigError(`${f}.trustDomain`, `"${trustDomain}" has two bundle sources`);
    seen.add(trustDomain);
    const file = readString(b, 'file', f, null);
    const url = readString(b, 'url', f, null);
    const fromApi = readBoolean(b, 'workloadApi', f, false);
    if ([file !== null, url !== null, fromApi].filter(Boolean).length !== 1) throw new ConfigError(f, 'needs exactly one of file, url or workloadApi: true');
    if (fromApi) return Object.freeze({ trustDomain, kind: 'workloadApi' });
    if (file !== null) return Object.freeze({ trustDomain, kind: 'file', path: resolve(baseDir, file) });
    if (!(url as string).startsWith('https://')) throw new ConfigError(`${f}.url`, 'must be an https:// URL');
    const caFile = readString(b, 'caFile', f, null);
    return Object.freeze({
      trustDomain,
      kind: 'url',
      url: url as string,
      refreshSeconds: readInteger(b, 'refreshSeconds', f, IDENTITY_DEFAULTS.bundleRefreshSeconds, 5, 86_400),
      timeoutMs: readInteger(b, 'timeoutMs', f, IDENTITY_DEFAULTS.bundleTimeoutMs, 100, 60_000),
      caFile: caFile === null ? null : resolve(baseDir, caFile),
    });
  });
  if (jwtSvid !== null && bundles.length === 0) throw new ConfigError(`${field}.bundles`, 'is required when jwtSvid is set: JWT-SVIDs are verified against trust bundles');

  const x = expectObject(top['xfcc'] ?? {}, `${field}.xfcc`, ['trustedPeers', 'trustedAddresses']);
  const trustedPeers = readStringList(x, 'trustedPeers', `${field}.xfcc`, []);
  trustedPeers.forEach((id, i) => {
    if (!parseSpiffeId(id).ok) throw new ConfigError(`${field}.xfcc.trustedPeers[${i}]`, `"${id}" is not a SPIFFE ID`);
  });
  const trustedAddresses = readStringList(x, 'trustedAddresses', `${field}.xfcc`, []);
  trustedAddresses.forEach((a, i) => {
    const [ip, bits] = a.split('/');
    const family = isIP(ip ?? '');
    const max = family === 6 ? 128 : 32;
    if (family === 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new ConfigError(`${field}.xfcc.trustedAddresses[${i}]`, `"${a}" is not an IP address or CIDR block`);
    }
  });

  const precedence = readString(top, 'precedence', field, IDENTITY_DEFAULTS.precedence);
  if (precedence !== 'none' && precedence !== 'x509' && precedence !== 'jwt-svid') {
    throw new ConfigError(`${field}.precedence`, 'must be none, x509 or jwt-svid');
  }

  const groupsRaw = top['groups'] ?? [];
  if (!Array.isArray(groupsRaw)) throw new ConfigError(`${field}.groups`, 'must be a list');
  const groups = groupsRaw.map((item: unknown, i) => {
    const f = `${field}.groups[${i}]`;
    const g = expectObject(item, f, ['match', 'group']);
    const match = readString(g, 'match', f, '');
    if (!match.startsWith('spiffe://')) throw new ConfigError(`${f}.match`, 'must be a SPIFFE ID pattern such as spiffe://example.org/ns/support/*');
    const group = readString(g, 'group', f, '');
    if (!GROUP_ENTITY.test(group)) throw new ConfigError(`${f}.group`, `"${group}" is not a Cedar entity reference such as WorkloadGroup::"support"`);
    return Object.freeze({ match, group });
  });

  return Object.freeze({
    jwtSvid,
    bundles: Object.freeze(bundles),
    xfcc: Object.freeze({ trustedPeers: Object.freeze([...trustedPeers]), trustedAddresses: Object.freeze([...trustedAddresses]) }),
    precedence,
    groups: Object.freeze(groups),
  });
}
