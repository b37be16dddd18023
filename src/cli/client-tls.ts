// How the client commands (task, health, check --server) reach a server: plaintext by default,
// TLS with the same sources a server takes. Files: --tls-ca (the authorities the server's
// certificate must chain to), with --tls-cert/--tls-key for mTLS. The SPIFFE Workload API:
// --workload-api ADDR (unix:///path or tcp://IP:PORT; "$SPIFFE_ENDPOINT_SOCKET" is the usual
// value) gives the client's own X.509-SVID and the bundles, fetched once.
//
// Which server is accepted: --server-id SPIFFE_ID names it exactly (recommended). Without it,
// a certificate that names the host passes as usual; otherwise one SPIFFE ID in the server's
// certificate is accepted only in the client's own trust domain (Workload API) or, with files,
// as vouched for by --tls-ca alone.

import { checkServerIdentity as checkHostName, type PeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { parseEndpointAddress } from '../config/workload-api.js';
import { parseSpiffeId } from '../core/spiffe-id.js';
import { WorkloadApiClient } from '../identity/workload-api.js';
import { soleUriSan } from '../identity/x509.js';
import { UsageError } from './usage.js';

export const CLIENT_TLS_OPTIONS = {
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'server-id': { type: 'string' },
  'workload-api': { type: 'string' },
} as const;

export interface ClientTlsValues {
  readonly 'tls-ca'?: string | undefined;
  readonly 'tls-cert'?: string | undefined;
  readonly 'tls-key'?: string | undefined;
  readonly 'server-id'?: string | undefined;
  readonly 'workload-api'?: string | undefined;
}

export interface ClientConnection {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
  /** The Workload API, when one was named (for a JWT-SVID); the caller closes it. */
  readonly workloadApi: WorkloadApiClient | null;
}

function read(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Credentials and channel options for `server` (HOST:PORT) from the command's TLS flags. */
export async function clientConnection(server: string, values: ClientTlsValues, timeoutMs = 5000): Promise<ClientConnection> {
  const ca = values['tls-ca'];
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  const serverId = values['server-id'];
  const apiAddress = values['workload-api'];
  if (serverId !== undefined && !parseSpiffeId(serverId).ok) throw new UsageError(`--server-id "${serverId}" is not a SPIFFE ID`);
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (apiAddress !== undefined && (ca !== undefined || cert !== undefined)) throw new UsageError('--workload-api supplies the certificates: --tls-ca, --tls-cert and --tls-key do not apply');
  if (apiAddress === undefined && ca === undefined) {
    if (cert !== undefined || serverId !== undefined) throw new UsageError('--tls-cert, --tls-key and --server-id need --tls-ca (or --workload-api)');
    return { credentials: credentials.createInsecure(), options: {}, workloadApi: null };
  }

  let roots: Buffer;
  let pair: { cert: Buffer; key: Buffer } | null = null;
  let ownTrustDomain: string | null = null;
  let workloadApi: WorkloadApiClient | null = null;
  if (apiAddress !== undefined) {
    const parsed = parseEndpointAddress(apiAddress);
    if (!parsed.ok) throw new UsageError(`--workload-api "${apiAddress}" ${parsed.message}`);
    workloadApi = new WorkloadApiClient(parsed.target);
    try {
      const context = await workloadApi.fetchX509Context(timeoutMs);
      const svid = context.svids[0];
      if (svid === undefined) throw new Error('the Workload API returned no X.509-SVID');
      pair = { cert: Buffer.from(svid.certificatePem), key: Buffer.from(svid.privateKeyPem) };
      const own = parseSpiffeId(svid.spiffeId);
      ownTrustDomain = own.ok ? own.value.trustDomain : null;
      roots = Buffer.from([...context.bundles.values()].flat().map((c) => c.toString()).join(''));
    } catch (err) {
      workloadApi.close();
      throw new Error(`the Workload API at ${apiAddress}: ${(err as Error).message}`);
    }
  } else {
    roots = read(ca as string, '--tls-ca');
    if (cert !== undefined && key !== undefined) pair = { cert: read(cert, '--tls-cert'), key: read(key, '--tls-key') };
  }

  const host = server.slice(0, server.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
  const checkServerIdentity = (_name: string, peer: PeerCertificate): Error | undefined => {
    const id = soleUriSan(peer.subjectaltname);
    if (serverId !== undefined) return id === serverId ? undefined : new Error(`the server is ${id ?? 'not a SPIFFE workload'}, not ${serverId} (--server-id)`);
    if (checkHostName(host, peer) === undefined) return undefined;
    const parsed = id === null ? null : parseSpiffeId(id);
    if (parsed === null || !parsed.ok) return new Error(`the server's certificate names neither ${host} nor a SPIFFE ID (--server-id)`);
    if (ownTrustDomain !== null && parsed.value.trustDomain !== ownTrustDomain) return new Error(`the server ${id} is not in the trust domain ${ownTrustDomain} (--server-id)`);
    return undefined;
  };
  return {
    credentials: credentials.createSsl(roots, pair?.key ?? null, pair?.cert ?? null, { checkServerIdentity }),
    // An SVID names no host, and an IP address is not a TLS server name (RFC 6066 §3): the
    // server is checked above, by its SPIFFE ID or against the real host.
    options: isIP(host) === 0 ? {} : { 'grpc.ssl_target_name_override': 'mandate', 'grpc.default_authority': server },
    workloadApi,
  };
}
