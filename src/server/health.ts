// grpc.health.v1.Health: Check and Watch (github.com/grpc/grpc/blob/master/doc/health-checking.md).
// "" is the whole server; the Authorization service has its own entry.

import { GRPC_STATUS, type ServerCall, type ServerStreamCall, type UnaryCallback, type ServiceImplementation } from './grpc-server.js';

export const SERVING_STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof SERVING_STATUS)[keyof typeof SERVING_STATUS];

interface HealthRequest {
  service?: string;
}

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<ServerStreamCall<HealthRequest>>>();

  constructor(services: readonly string[]) {
    for (const name of ['', ...services]) this.statuses.set(name, SERVING_STATUS.NOT_SERVING);
  }

  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) {
      this.statuses.set(name, status);
      for (const call of this.watchers.get(name) ?? []) call.write({ status });
    }
  }

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const call of this.watchers.get(service) ?? []) call.write({ status });
  }

  status(service = ''): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Ends every Watch stream, so a graceful shutdown is not held open by them. */
  endWatches(): void {
    for (const set of this.watchers.values()) for (const call of set) call.end();
    this.watchers.clear();
  }

  implementation(): ServiceImplementation {
    return {
      Check: (call: ServerCall<HealthRequest>, callback: UnaryCallback<unknown>) => {
        const status = this.statuses.get(call.request.service ?? '');
        if (status === undefined) callback({ code: GRPC_STATUS.NOT_FOUND, details: 'unknown service' });
        else callback(null, { status });
      },
      Watch: (call: ServerStreamCall<HealthRequest>) => {
        const service = call.request.service ?? '';
        call.write({ status: this.statuses.get(service) ?? SERVING_STATUS.SERVICE_UNKNOWN });
        let set = this.watchers.get(service);
        if (set === undefined) this.watchers.set(service, (set = new Set()));
        set.add(call);
        call.on('cancelled', () => set.delete(call));
      },
    };
  }
}
