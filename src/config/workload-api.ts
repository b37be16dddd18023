// The `tls` and `workloadApi` sections: where Mandate's own TLS identity comes from, and where
// the SPIFFE Workload API is. Addresses follow the SPIFFE Workload Endpoint standard §4:
// `unix:///path` (or `unix:/path`) for a Unix socket, `tcp://IP:PORT` for TCP; nothing else
// (no query, fragment, user info or host names).

import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseSpiffeId } from '../core/spiffe-id.js';
import { ConfigError, expectObject, type JsonObject, readBoolean, readInteger, readString, readStringList } from './fields.js';
import type { TlsConfig, WorkloadApiConfig } from './types.js';

export const WORKLOAD_API_DEFAULTS = Object.freeze({ timeoutMs: 10_000 });

/** A Workload Endpoint address -> a grpc-js target; a message when it is not one. */
export function parseEndpointAddress(address: string): { ok: true; target: string } | { ok: false; message: string } {
  if (address.startsWith('unix:')) {
    let rest = address.slice(5);
    if (rest.startsWith('//')) {
      // unix://AUTHORITY/path: the authority must be empty (unix:///path).
      rest = rest.slice(2);
      if (!rest.startsWith('/')) return { ok: false, message: 'a unix: address has no host (unix:///path)' };
    }
    if (!rest.startsWith('/') || rest.length < 2) return { ok: false, message: 'a unix: address needs an absolute socket path (unix:///path)' };
    if (/[?#]/.test(rest)) return { ok: false, message: 'a unix: address has no query or fragment' };
    return { ok: true, target: `unix:${rest}` };
  }
  if (address.startsWith('tcp://')) {
    const m = /^tcp:\/\/(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(address);
    const host = m?.[1]?.replace(/^\[(.*)\]$/, '$1');
    const port = Number(m?.[2]);
    if (m === null || host === undefined || isIP(host) === 0 || port < 1 || port > 65_535) return { ok: false, message: 'a tcp: address is tcp://IP:PORT (an IP address, not a host name)' };
    return { ok: true, target: `${m[1]}:${port}` };
  }
  return { ok: false, message: 'must be unix:///path or tcp://IP:PORT' };
}

/** `workloadApi:` (with SPIFFE_ENDPOINT_SOCKET as the default address); null when nothing needs it. */
export function parseWorkloadApiConfig(raw: unknown, needed: boolean, endpointSocket: string | undefined): WorkloadApiConfig | null {
  const field = 'config.workloadApi';
  const w = expectObject(raw ?? {}, field, ['socket', 'spiffeId', 'timeoutMs']);
  if (!needed) {
    if (raw !== undefined) throw new ConfigError(field, 'is set but nothing uses it: set tls.workloadApi or identity.bundles[].workloadApi');
    return null;
  }
  const address = readString(w, 'socket', field, null) ?? (endpointSocket === '' ? undefined : endpointSocket);
  if (address === undefined) throw new ConfigError(`${field}.socket`, 'is required (or SPIFFE_ENDPOINT_SOCKET): where the SPIFFE Workload API listens, e.g. unix:///run/spire/sockets/agent.sock');
  const parsed = parseEndpointAddress(address);
  if (!parsed.ok) throw new ConfigError(`${field}.socket`, `"${address}" ${parsed.message}`);
  const spiffeId = readString(w, 'spiffeId', field, null);
  if (spiffeId !== null && !parseSpiffeId(spiffeId).ok) throw new ConfigError(`${field}.spiffeId`, `"${spiffeId}" is not a SPIFFE ID`);
  return Object.freeze({ target: parsed.target, address, spiffeId, timeoutMs: readInteger(w, 'timeoutMs', field, WORKLOAD_API_DEFAULTS.timeoutMs, 100, 600_000) });
}

/** `tls:` from files (cert, key, clientCa) or from the Workload API (workloadApi: true). */
export function parseTlsConfig(raw: unknown, baseDir: string): TlsConfig | null {
  if (raw === undefined) return null;
  const field = 'config.tls';
  const t: JsonObject = expectObject(raw, field, ['cert', 'key', 'clientCa', 'checkClients', 'workloadApi']);
  const checkClients = readStringList(t, 'checkClients', field, []);
  checkClients.forEach((id, i) => {
    if (!parseSpiffeId(id).ok) throw new ConfigError(`${field}.checkClients[${i}]`, `"${id}" is not a SPIFFE ID`);
  });
  if (readBoolean(t, 'workloadApi', field, false)) {
    for (const k of ['cert', 'key', 'clientCa']) if (t[k] !== undefined) throw new ConfigError(`${field}.${k}`, 'cannot be set with workloadApi: the Workload API supplies the SVID, its key and the bundles');
    return Object.freeze({ source: 'workloadApi', checkClients: Object.freeze([...checkClients]) });
  }
  const cert = readString(t, 'cert', field, null);
  const key = readString(t, 'key', field, null);
  if (cert === null || key === null) throw new ConfigError(field, 'needs cert and key (PEM files), or workloadApi: true');
  const clientCa = readString(t, 'clientCa', field, null);
  if (checkClients.length > 0 && clientCa === null) throw new ConfigError(`${field}.checkClients`, 'needs clientCa: without client certificates no caller can be recognized');
  return Object.freeze({
    source: 'files',
    cert: resolve(baseDir, cert),
    key: resolve(baseDir, key),
    clientCa: clientCa === null ? null : resolve(baseDir, clientCa),
    checkClients: Object.freeze([...checkClients]),
  });
}
