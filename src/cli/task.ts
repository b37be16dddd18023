// mandate task start|end|show|approve|renew: the task API of a running server, over gRPC.
// The caller's workload identity is a JWT-SVID: --svid-file FILE or MANDATE_JWT_SVID.

import { Metadata, makeClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TASKS_SERVICE } from '../server/protos.js';
import { UsageError } from './usage.js';
import { CLIENT_TLS_OPTIONS, clientConnection } from './client-tls.js';


const TasksClient = makeClientConstructor(TASKS_SERVICE, 'mandate.tasks.v1.Tasks');

export async function runTask(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      server: { type: 'string', default: '127.0.0.1:9191' },
      'svid-file': { type: 'string' },
      purpose: { type: 'string' },
      tenant: { type: 'string' },
      tool: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      'max-calls': { type: 'string' },
      subject: { type: 'string' },
      'subject-token': { type: 'string' },
      parent: { type: 'string' },
      'parent-token': { type: 'string' },
      scope: { type: 'string' },
      'arguments-digest': { type: 'string' },
      uses: { type: 'string' },
      audience: { type: 'string', default: 'mandate' },
      ...CLIENT_TLS_OPTIONS,
    },
  });
  let svid = values['svid-file'] !== undefined ? readFileSync(values['svid-file'], 'utf8').trim() : process.env['MANDATE_JWT_SVID'];
  const taskId = positionals[0] ?? '';
  let method: string;
  let request: Record<string, unknown>;
  switch (sub) {
    case 'start':
      method = 'StartTask';
      request = {
        purpose: values.purpose ?? '',
        tenant: values.tenant ?? '',
        tools: values.tool ?? [],
        ttlSeconds: Number(values.ttl ?? 0),
        maxCalls: Number(values['max-calls'] ?? 0),
        subject: values.subject ?? '',
        subjectToken: values['subject-token'] ?? '',
        parentTaskId: values.parent ?? '',
        parentToken: values['parent-token'] ?? '',
      };
      break;
    case 'renew':
    case 'show':
    case 'end':
      method = { renew: 'RenewToken', show: 'GetTask', end: 'EndTask' }[sub];
      request = { taskId };
      break;
    case 'approve':
      method = 'GrantApproval';
      request = { taskId, scope: values.scope ?? '', ttlSeconds: Number(values.ttl ?? 0), argumentsDigest: values['arguments-digest'] ?? '', uses: Number(values.uses ?? 0) };
      break;
    default:
      throw new UsageError(sub === undefined ? 'start, renew, show, approve or end?' : `unknown subcommand "${sub}"`);
  }
  if (sub !== 'start' && taskId === '') throw new UsageError(`${sub} needs TASK_ID`);
  const connection = await clientConnection(values.server, values);
  try {
    // With the Workload API and no token given, the caller's JWT-SVID comes from there too.
    if ((svid === undefined || svid === '') && connection.workloadApi !== null) svid = await connection.workloadApi.fetchJwtSvid(values.audience, null, 5000);
  } finally {
    connection.workloadApi?.close();
  }
  const client = new TasksClient(values.server, connection.credentials, connection.options) as Client & Record<string, GrpcMethod>;
  const metadata = new Metadata();
  if (svid !== undefined && svid !== '') metadata.set('authorization', `Bearer ${svid}`);
  try {
    const response = await new Promise<unknown>((resolveCall, reject) => {
      (client[method] as GrpcMethod).call(client, request, metadata, { deadline: new Date(Date.now() + 10_000) }, (err: ServiceError | null, res: unknown) =>
        err ? reject(err) : resolveCall(res),
      );
    });
    process.stdout.write(`${JSON.stringify(response, null, 2)}\n`);
    return 0;
  } catch (err) {
    const e = err as ServiceError;
    process.stderr.write(`mandate task ${sub}: ${e.details ?? e.message}\n`);
    return 2;
  } finally {
    client.close();
  }
}
