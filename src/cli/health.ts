// mandate health: asks a running Mandate's gRPC health service (grpc.health.v1.Health/Check),
// the check a container runtime or a script runs (Kubernetes probes it natively: grpc probe).
// Exit 0 when SERVING, 1 otherwise (NOT_SERVING, unreachable, or no answer within 3 s).

import { makeClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { HEALTH_SERVICE } from '../server/protos.js';
import { CLIENT_TLS_OPTIONS, clientConnection } from './client-tls.js';

const HealthClient = makeClientConstructor(HEALTH_SERVICE, 'grpc.health.v1.Health');
const SERVING = 1;

export async function runHealth(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { server: { type: 'string', default: '127.0.0.1:9191' }, service: { type: 'string', default: '' }, ...CLIENT_TLS_OPTIONS } });
  const address = values.server as string;
  const connection = await clientConnection(address, values);
  connection.workloadApi?.close();
  const client = new HealthClient(address, connection.credentials, connection.options) as Client & Record<string, (...args: unknown[]) => unknown>;
  try {
    const status = await new Promise<number>((resolve, reject) => {
      (client['Check'] as (...args: unknown[]) => unknown).call(client, { service: values.service }, { deadline: new Date(Date.now() + 3000) }, (err: ServiceError | null, res: { status?: number | string }) =>
        err ? reject(err) : resolve(typeof res.status === 'number' ? res.status : res.status === 'SERVING' ? SERVING : 0),
      );
    });
    process.stdout.write(`${status === SERVING ? 'SERVING' : 'NOT_SERVING'}\n`);
    return status === SERVING ? 0 : 1;
  } catch (err) {
    process.stdout.write(`UNREACHABLE: ${(err as ServiceError).details || (err as Error).message}\n`);
    return 1;
  } finally {
    client.close();
  }
}
