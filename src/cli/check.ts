// mandate check: decide CheckRequests through the same bytes -> decision -> CheckResponse path
// as the server (the JSON is encoded to protobuf and decoded back first), offline against a
// config, or asked of a running server (--server), so that a live task token can be tried.
// One request: its answer as a JSON object. Several (files, folders, repeated --request): one
// JSON line each, with the file it came from.

import { readdirSync, readFileSync, statSync } from 'node:fs';
/** A grpc-js client method, called with the client as `this` (clients built at run time have no typed methods). */
type GrpcMethod = (...args: unknown[]) => unknown;
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { UsageError } from './usage.js';
import { decide } from '../check/pipeline.js';
import { respond, type CheckResponseObject } from '../check/respond.js';
import { REASONS } from '../core/reasons.js';
import type { CheckRequestMessage } from '../check/decode.js';
import { AUTHORIZATION_SERVICE, decodeCheckRequestBytes, encodeCheckRequest } from '../server/protos.js';
import { loadRuntimeForCommand, type Runtime } from './runtime.js';
import { CLIENT_TLS_OPTIONS, clientConnection, type ClientConnection } from './client-tls.js';

type Answer = Record<string, unknown> & { decision: 'allow' | 'deny' };

export async function runCheck(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { request: { type: 'string', multiple: true }, config: { type: 'string' }, explain: { type: 'boolean', default: false }, server: { type: 'string' }, ...CLIENT_TLS_OPTIONS },
    strict: true,
  });
  const given = [...(values.request ?? []), ...positionals];
  if (given.length === 0) throw new UsageError('--request FILE (or - for stdin) is required; several files or folders may be given');
  if (values.server !== undefined && values.config !== undefined) throw new UsageError('--server asks a running server: --config does not apply');
  const tlsGiven = Object.keys(CLIENT_TLS_OPTIONS).some((k) => (values as Record<string, unknown>)[k] !== undefined);
  if (values.server === undefined && tlsGiven) throw new UsageError('the TLS options apply to --server only');
  let files: string[];
  try {
    files = given.flatMap((p) => (p === '-' ? ['-'] : requestFiles(p)));
  } catch (err) {
    process.stderr.write(`mandate check: ${(err as Error).message}\n`);
    return 1;
  }
  const runtime = values.server === undefined ? loadRuntimeForCommand(values.config ?? null) : null;
  if (values.server === undefined && runtime === null) return 1;
  await runtime?.bundles.start();
  let connection: ClientConnection | null = null;
  if (values.server !== undefined) {
    connection = await clientConnection(values.server, values);
    connection.workloadApi?.close();
  }
  const ask = values.server === undefined || connection === null ? offline(runtime as Runtime, values.explain === true) : remote(values.server, connection);
  let worst = 0;
  try {
    for (const file of files) {
      let json: unknown;
      let message: CheckRequestMessage;
      try {
        json = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));
      } catch (err) {
        process.stderr.write(`mandate check: cannot read the request ${file === '-' ? 'from stdin' : file}: ${(err as Error).message}\n`);
        worst = 1;
        continue;
      }
      try {
        message = decodeCheckRequestBytes(encodeCheckRequest(json)) as CheckRequestMessage;
      } catch (err) {
        process.stderr.write(`mandate check: ${file}: not a CheckRequest in proto3 JSON form: ${(err as Error).message}\n`);
        worst = 1;
        continue;
      }
      const answer = await ask.decide(message);
      if (files.length === 1) process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      else process.stdout.write(`${JSON.stringify({ file, ...answer })}\n`);
      if (answer.decision === 'deny' && worst === 0) worst = 2;
    }
  } catch (err) {
    process.stderr.write(`mandate check: ${(err as Error).message}\n`);
    worst = 1;
  } finally {
    ask.close();
    runtime?.bundles.stop();
  }
  return worst;
}

/** A file as it is; a folder's *.json files, recursively, sorted. */
function requestFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((d) => (d.isDirectory() ? requestFiles(join(path, d.name)) : d.name.endsWith('.json') ? [join(path, d.name)] : []));
}

interface Asker {
  decide(message: CheckRequestMessage): Promise<Answer>;
  close(): void;
}

function offline(runtime: Runtime, explain: boolean): Asker {
  return {
    decide: async (message) => {
      const decision = await decide(message, runtime.state());
      const response = respond(decision, runtime.config);
      const out: Answer = {
        decision: decision.allowed ? 'allow' : 'deny',
        code: decision.code,
        message: decision.allowed ? null : decision.code === null ? null : (decision.message ?? REASONS[decision.code].message),
        httpStatus: response.deniedResponse?.status.code ?? 200,
        decisionId: decision.decisionId,
        policyVersion: decision.policyVersion,
        principal: decision.cedar === null ? null : `${decision.cedar.principal.type}::"${decision.cedar.principal.id}"`,
        action: decision.action,
        resource: decision.resource,
      };
      if (explain) out['explain'] = { determiningPolicies: decision.determining, errors: decision.errors, cedarRequest: decision.cedar, response };
      return out;
    },
    close: () => undefined,
  };
}

const Authorization = makeClientConstructor(AUTHORIZATION_SERVICE, 'envoy.service.auth.v3.Authorization');

/** Asks a running Mandate (plaintext gRPC): its answer, read back from the CheckResponse. */
function remote(address: string, connection: ClientConnection): Asker {
  const client = new Authorization(address, connection.credentials, connection.options) as Client & Record<string, GrpcMethod>;
  return {
    decide: (message) =>
      new Promise<Answer>((resolveAnswer, reject) => {
        (client['Check'] as GrpcMethod).call(client, message, { deadline: new Date(Date.now() + 10_000) }, (err: ServiceError | null, res: CheckResponseObject) => {
          if (err !== null) return reject(new Error(`${address}: ${err.details || err.message}`));
          const fields = res.dynamicMetadata?.fields ?? {};
          const text = (key: string): string | null => {
            const f = fields[key] as { stringValue?: string } | undefined;
            return f?.stringValue ?? null;
          };
          let body: { code?: string; message?: string; error?: { message?: string; data?: { code?: string } } } = {};
          try {
            body = res.deniedResponse?.body ? (JSON.parse(res.deniedResponse.body) as typeof body) : {};
          } catch {
            body = {};
          }
          const allowed = (res.status?.code ?? 0) === 0;
          resolveAnswer({
            decision: allowed ? 'allow' : 'deny',
            code: text('code') ?? body.code ?? body.error?.data?.code ?? null,
            message: allowed ? null : (body.message ?? body.error?.message ?? null),
            httpStatus: res.deniedResponse?.status?.code ?? 200,
            decisionId: text('decisionId'),
            policyVersion: text('policyVersion'),
            server: address,
          });
        });
      }),
    close: () => client.close(),
  };
}
