// The admin HTTP port (loopback by default): the JWKS that verifies task tokens, and health.

import type { Server } from 'node:http';
import { bindAdminPort } from './bind.js';
import type { AddressInfo } from 'node:net';
import type { KeyRing } from '../identity/task-keys.js';
import type { TaskStore } from '../tasks/store.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { HealthService } from './health.js';
import { SERVING_STATUS } from './health.js';

export interface AdminServer {
  readonly address: string;
  close(): Promise<void>;
}

export async function startAdmin(listen: string, parts: { health: HealthService; keys: KeyRing | null; store: TaskStore | null; telemetry: Telemetry | null; status?: () => Record<string, unknown>; server?: Server }): Promise<AdminServer> {
  // Already bound by `mandate serve` (bind.ts), or bound here.
  const server: Server = parts.server ?? (await bindAdminPort(listen));
  server.on('request', (req, res) => {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: 'method not allowed' });
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/.well-known/jwks.json' && parts.keys !== null) {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=60' }).end(JSON.stringify(parts.keys.jwks()));
      return;
    }
    if (path === '/metrics' && parts.telemetry !== null) return parts.telemetry.handleMetrics(req, res);
    if (path === '/v1/status' && parts.status !== undefined) return json(200, parts.status());
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const serving = parts.health.status('') === SERVING_STATUS.SERVING;
      const store = parts.store === null ? 'none' : parts.store.healthy() ? 'ok' : 'unavailable';
      return json(serving && store !== 'unavailable' ? 200 : 503, { serving, taskStore: store });
    }
    json(404, { error: 'not found' });
  });
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const bound = server.address() as AddressInfo;
  return {
    address: `${host}:${bound.port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
