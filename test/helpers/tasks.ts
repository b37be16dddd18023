// A client for Mandate's own task API (mandate.tasks.v1.Tasks), authenticating with a JWT-SVID.

import { Metadata, credentials, makeClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { TASKS_SERVICE } from '../../src/server/protos.js';

const TasksClient = makeClientConstructor(TASKS_SERVICE, 'mandate.tasks.v1.Tasks');

export interface TasksApi {
  call<T = Record<string, unknown>>(method: string, request: Record<string, unknown>, jwtSvid?: string): Promise<T>;
  close(): void;
}

export function createTasksClient(address: string): TasksApi {
  const client = new TasksClient(address, credentials.createInsecure()) as Client & Record<string, GrpcMethod>;
  return {
    call: (method, request, jwtSvid) =>
      new Promise((resolve, reject) => {
        const metadata = new Metadata();
        if (jwtSvid !== undefined) metadata.set('authorization', `Bearer ${jwtSvid}`);
        (client[method] as GrpcMethod).call(client, request, metadata, { deadline: new Date(Date.now() + 5000) }, (err: ServiceError | null, res: unknown) =>
          err ? reject(err) : resolve(res as never),
        );
      }),
    close: () => client.close(),
  };
}

/** The reason code at the start of a task API error's details ("policy_denied: ..."). */
export function reasonOf(err: unknown): string {
  return String((err as ServiceError).details ?? '').split(':')[0] as string;
}
