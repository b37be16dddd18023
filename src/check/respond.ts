// Stage 5: decision -> CheckResponse (the only module that builds one). The object form is
// what @grpc/proto-loader serializes (camelCase fields, enums by number).

import type { MandateConfig } from '../config/types.js';
import { GRPC_OK, REASONS } from '../core/reasons.js';
import type { Decision } from '../core/decision.js';

export const DECISION_ID_HEADER = 'x-mandate-decision-id';
/** Dry run (config dryRun): a request policy would deny is let through with this header, valued with the reason code. */
export const DRY_RUN_HEADER = 'x-mandate-dry-run-deny';
const OVERWRITE_IF_EXISTS_OR_ADD = 2;

interface HeaderValueOption {
  header: { key: string; value: string };
  appendAction: number;
}

export interface CheckResponseObject {
  status: { code: number; message?: string };
  okResponse?: { headers: HeaderValueOption[]; headersToRemove: string[] };
  deniedResponse?: { status: { code: number }; headers: HeaderValueOption[]; body: string };
  dynamicMetadata: { fields: Record<string, { stringValue: string } | { listValue: { values: { stringValue: string }[] } }> };
}

export interface DenyBody {
  decision: 'deny';
  code: string;
  message: string;
  decisionId: string;
  determiningPolicies?: readonly string[];
  /** approval_required: the approval that would unlock the call. */
  approval?: NonNullable<Decision['approval']>;
}

// JSON-RPC error codes for denied MCP calls, as MCP gateways commonly answer (FACTS: MCP).
const RPC_PERMISSION_DENIED = -32001;
const RPC_RESOURCE_EXHAUSTED = -32003;
const EXHAUSTED: ReadonlySet<string> = new Set(['budget_exhausted', 'overloaded', 'state_unavailable']);

function header(key: string, value: string): HeaderValueOption {
  return { header: { key, value }, appendAction: OVERWRITE_IF_EXISTS_OR_ADD };
}

/** What respond() reads of the configuration. */
export type RespondConfig = Pick<MandateConfig, 'explain' | 'principalHeader'> & { readonly dryRun?: boolean };

/**
 * An allowed decision's answer may read only its id, allowed, code, identity and policy version:
 * the server writes allowed answers from a template keyed by those (server/frames.ts).
 */
export function respond(decision: Decision, config: RespondConfig): CheckResponseObject {
  // Envoy access logs can read these under the ext_authz filter's metadata namespace.
  const fields: CheckResponseObject['dynamicMetadata']['fields'] = {
    decisionId: { stringValue: decision.decisionId },
    decision: { stringValue: decision.allowed ? 'allow' : 'deny' },
    policyVersion: { stringValue: decision.policyVersion },
  };
  if (decision.code !== null) fields['code'] = { stringValue: decision.code };
  if (config.dryRun === true) fields['dryRun'] = { stringValue: 'true' };
  const dynamicMetadata: CheckResponseObject['dynamicMetadata'] = { fields };
  // Dry run: every request goes through; what policy decided is in the headers and metadata.
  if (decision.allowed || config.dryRun === true) {
    const headers = [header(DECISION_ID_HEADER, decision.decisionId)];
    if (!decision.allowed) headers.push(header(DRY_RUN_HEADER, decision.code ?? 'internal_error'));
    const headersToRemove: string[] = [];
    if (config.principalHeader !== null) {
      // Always overwrite or strip: a client must never be able to supply this header itself.
      if (decision.identity !== null && decision.identity.kind !== 'anonymous') headers.push(header(config.principalHeader, decision.identity.spiffe.id));
      else headersToRemove.push(config.principalHeader);
    }
    return { status: { code: GRPC_OK }, okResponse: { headers, headersToRemove }, dynamicMetadata };
  }
  const code = decision.code ?? 'internal_error';
  const spec = REASONS[code];
  // Internal failures keep their detail for the log; the caller gets the catalogue's text.
  const message = code === 'internal_error' ? spec.message : decision.message ?? spec.message;
  const body: DenyBody = { decision: 'deny', code, message, decisionId: decision.decisionId };
  if (config.explain) body.determiningPolicies = decision.determining;
  if (decision.approval !== null) body.approval = decision.approval;
  let httpStatus: number = spec.httpStatus;
  let text: string;
  if (decision.rpc === null) {
    text = JSON.stringify(body);
  } else {
    // An MCP client gets a JSON-RPC error for its request id, the reason in error.data. The HTTP
    // status: 400 for a malformed request, 401 when identity failed (so clients can run their
    // auth flow), otherwise the route's mcpDenyStatus (200 by default; docs/tool-calls.md).
    const { decision: _d, code: _c, message: _m, ...data } = body;
    httpStatus = code === 'bad_request' ? 400 : spec.httpStatus === 401 ? 401 : decision.rpc.denyStatus;
    const rpcCode = decision.rpc.errorCode ?? (EXHAUSTED.has(code) ? RPC_RESOURCE_EXHAUSTED : RPC_PERMISSION_DENIED);
    text = JSON.stringify({ jsonrpc: '2.0', id: decision.rpc.id, error: { code: rpcCode, message: `${code}: ${message}`, data: { code, ...data } } });
  }
  return {
    status: { code: spec.grpcCode, message: `${code}: ${message}` },
    deniedResponse: {
      status: { code: httpStatus },
      headers: [header('content-type', 'application/json'), header(DECISION_ID_HEADER, decision.decisionId)],
      body: text,
    },
    dynamicMetadata,
  };
}
