// mandate check: decide one CheckRequest offline, through the same bytes -> decision ->
// CheckResponse path as the server (the JSON is encoded to protobuf and decoded back first).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';
import { decide } from '../check/pipeline.js';
import { respond } from '../check/respond.js';
import { REASONS } from '../core/reasons.js';
import type { CheckRequestMessage } from '../check/decode.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../server/protos.js';
import { loadRuntimeForCommand } from './runtime.js';

export async function runCheck(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { request: { type: 'string' }, config: { type: 'string' }, explain: { type: 'boolean', default: false } },
    strict: true,
  });
  if (values.request === undefined) throw new UsageError('--request FILE (or - for stdin) is required');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(values.request === '-' ? 0 : values.request, 'utf8'));
  } catch (err) {
    process.stderr.write(`mandate check: cannot read the request: ${(err as Error).message}\n`);
    return 1;
  }
  const runtime = loadRuntimeForCommand(values.config ?? null);
  if (runtime === null) return 1;
  let message: CheckRequestMessage;
  try {
    message = decodeCheckRequestBytes(encodeCheckRequest(json)) as CheckRequestMessage;
  } catch (err) {
    process.stderr.write(`mandate check: not a CheckRequest in proto3 JSON form: ${(err as Error).message}\n`);
    return 1;
  }
  await runtime.bundles.start();
  const decision = await decide(message, runtime.state());
  runtime.bundles.stop();
  const response = respond(decision, runtime.config);
  const out: Record<string, unknown> = {
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
  if (values.explain) {
    out['explain'] = {
      determiningPolicies: decision.determining,
      errors: decision.errors,
      cedarRequest: decision.cedar,
      response,
    };
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  return decision.allowed ? 0 : 2;
}
