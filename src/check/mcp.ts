// MCP over Streamable HTTP (FACTS: MCP): every request is a POST of one JSON-RPC 2.0 message.
// This module reads the body Envoy forwards (with_request_body) into the calls Mandate decides.
// Revision 2026-07-28 mirrors the method and name into Mcp-Method / Mcp-Name headers: a
// component that reads the body must refuse a header/body mismatch (JSON-RPC error -32020).
// Batches (JSON arrays) exist only in older revisions; 2026-07-28 forbids them.

import { ReadNames, readStrictJson, sameNameReason, type JsonObject, type JsonValue } from '../json/strict.js';
import { describeType } from '../json/schema.js';
import { decodeMirrored } from './mcp-headers.js';
import { methodMember } from './body.js';
import { deny, ok, type Outcome } from '../core/reasons.js';

export const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize', 'ping',
  'tools/list', 'tools/call',
  'resources/list', 'resources/templates/list', 'resources/read', 'resources/subscribe', 'resources/unsubscribe',
  'prompts/list', 'prompts/get',
  'completion/complete', 'logging/setLevel',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed',
]);
const BATCHLESS_REVISION = '2026-07-28';

// JSON-RPC error codes used in deny bodies.
export const RPC_PARSE_ERROR = -32700;
export const RPC_INVALID_REQUEST = -32600;
/** JSON-RPC's invalid params: MCP answers it for an unknown tool and for arguments its tool refuses. */
export const RPC_INVALID_PARAMS = -32602;
export const RPC_HEADER_MISMATCH = -32020;

// The names MCP servers act on in the envelope (JSON-RPC 2.0) and in params (MCP's requests).
// A member that folds to one of these without being spelled exactly so is refused (json.ts):
// a Go server before the MCP Go SDK's fix would read "Method" or "paramſ" as the real thing.
const ENVELOPE_NAMES = new ReadNames(['jsonrpc', 'id', 'method', 'params', 'result', 'error']);
const PARAMS_NAMES = new ReadNames(['name', 'arguments', 'uri', '_meta', 'cursor', 'protocolVersion', 'capabilities', 'clientInfo', 'level', 'ref', 'argument', 'context', 'progressToken', 'requestId', 'reason']);

export interface McpLimits {
  /** Containers nested deeper than this in the whole message are refused. */
  readonly maxDepth: number;
  /** Calls in one JSON-RPC batch, at most: each is one evaluation. */
  readonly maxBatchCalls: number;
}

export interface McpCall {
  readonly method: string;
  /** JSON-RPC id; null for a notification. */
  readonly id: string | number | null;
  /** tools/call and prompts/get: the name; resources/read: the URI. */
  readonly target: string | null;
  /** tools/call and prompts/get arguments (a JSON object), else null. */
  readonly arguments: Record<string, unknown> | null;
}

export interface McpMessage {
  readonly calls: readonly McpCall[];
  readonly batch: boolean;
  readonly protocolVersion: string;
}

/** A bad_request that also says which JSON-RPC error to answer with. */
export type McpOutcome = Outcome<McpMessage> & { readonly rpcCode?: number; readonly rpcId?: string | number | null };

function bad(message: string, rpcCode: number, rpcId: string | number | null = null): McpOutcome {
  return { ...deny('bad_request', message), rpcCode, rpcId };
}

/** The request headers the MCP reader reads (pipeline.ts headerNamesRead). */
export const MCP_HEADERS = ['mcp-protocol-version', 'mcp-method', 'mcp-name'] as const;

export function parseMcp(text: string, headers: ReadonlyMap<string, string>, limits: McpLimits): McpOutcome {
  // One reading or none (json.ts): duplicates, case-folded aliases and inexact numbers are
  // refused as an invalid request, not read one way.
  const read = readStrictJson(text, { maxDepth: limits.maxDepth });
  if (!read.ok) return bad(`body is refused: ${read.message} (at offset ${read.offset})`, read.kind === 'syntax' ? RPC_PARSE_ERROR : RPC_INVALID_REQUEST);
  const parsed = read.value;
  const protocolVersion = headers.get('mcp-protocol-version') ?? '';
  const batch = Array.isArray(parsed);
  if (batch && protocolVersion >= BATCHLESS_REVISION) return bad(`JSON-RPC batches are not allowed in MCP ${protocolVersion}`, RPC_INVALID_REQUEST);
  const messages = batch ? (parsed as unknown[]) : [parsed];
  if (messages.length === 0) return bad('empty JSON-RPC batch', RPC_INVALID_REQUEST);
  if (messages.length > limits.maxBatchCalls) return bad(`a JSON-RPC batch of ${messages.length} calls is more than the ${limits.maxBatchCalls} allowed (limits.maxBatchCalls)`, RPC_INVALID_REQUEST);
  const calls: McpCall[] = [];
  for (const m of messages) {
    const call = readCall(m);
    if (!('method' in call)) return call;
    calls.push(call);
  }
  if (!batch) {
    const mismatch = checkMirroredHeaders(calls[0] as McpCall, headers);
    if (mismatch !== null) return mismatch;
  }
  return ok({ calls, batch, protocolVersion });
}

function readCall(m: unknown): McpCall | McpOutcome {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return bad('a JSON-RPC message must be an object', RPC_INVALID_REQUEST);
  const msg = m as JsonObject;
  const id = msg['id'];
  const rpcId = typeof id === 'string' || typeof id === 'number' ? id : null;
  const envelopeAlias = aliasIn(msg, ENVELOPE_NAMES);
  if (envelopeAlias !== null) return bad(`the JSON-RPC message ${envelopeAlias}`, RPC_INVALID_REQUEST, rpcId);
  if (msg['jsonrpc'] !== '2.0') return bad('not a JSON-RPC 2.0 message (jsonrpc must be "2.0")', RPC_INVALID_REQUEST, rpcId);
  // A `_method` member is the HTTP method to Laravel (its parameters include a JSON body's members).
  const override = methodMember(msg);
  if (override !== null) return bad(`the message carries a ${JSON.stringify(override)} member, which frameworks such as Laravel take for another HTTP method`, RPC_INVALID_REQUEST, rpcId);
  if (!('method' in msg)) {
    return 'result' in msg || 'error' in msg
      ? bad('a JSON-RPC response is not a request', RPC_INVALID_REQUEST, rpcId)
      : bad('JSON-RPC request has no method', RPC_INVALID_REQUEST, rpcId);
  }
  // A message with a method and a result or an error is neither a request nor a response: a
  // server that looks for `result` first takes it for a reply, one that looks for `method` runs it.
  if ('result' in msg || 'error' in msg) return bad('a JSON-RPC message with a method and a result or an error is neither a request nor a response', RPC_INVALID_REQUEST, rpcId);
  const method = msg['method'];
  if (typeof method !== 'string' || method === '') return bad('JSON-RPC method must be a non-empty string', RPC_INVALID_REQUEST, rpcId);
  if (id !== undefined && rpcId === null) return bad('JSON-RPC id must be a string or a number', RPC_INVALID_REQUEST);
  if (!MCP_METHODS.has(method)) return bad(`unknown MCP method "${method.slice(0, 64)}"`, RPC_INVALID_REQUEST, rpcId);
  const params = msg['params'];
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
    return bad('params must be an object', RPC_INVALID_REQUEST, rpcId);
  }
  const p = (params ?? {}) as JsonObject;
  const paramsAlias = aliasIn(p, PARAMS_NAMES);
  if (paramsAlias !== null) return bad(`params ${paramsAlias}`, RPC_INVALID_REQUEST, rpcId);
  let target: string | null = null;
  let args: Record<string, unknown> | null = null;
  if (method === 'tools/call' || method === 'prompts/get') {
    if (typeof p['name'] !== 'string' || p['name'] === '') return bad(`${method} needs params.name`, RPC_INVALID_REQUEST, rpcId);
    target = p['name'];
    const a = p['arguments'];
    if (a !== undefined && (typeof a !== 'object' || a === null || Array.isArray(a))) return bad('params.arguments must be an object', RPC_INVALID_REQUEST, rpcId);
    args = (a ?? {}) as Record<string, unknown>;
    // MCP's GetPromptRequest: `arguments?: { [key: string]: string }`. A number or a boolean
    // would reach the policy as the same tag as its spelling in a string ("5", "true").
    if (method === 'prompts/get') {
      for (const [name, v] of Object.entries(args)) if (typeof v !== 'string') return bad(`prompts/get arguments are strings: params.arguments.${name.slice(0, 64)} is ${describeType(v as JsonValue)}`, RPC_INVALID_PARAMS, rpcId);
    }
  } else if (method === 'resources/read') {
    if (typeof p['uri'] !== 'string' || p['uri'] === '') return bad('resources/read needs params.uri', RPC_INVALID_REQUEST, rpcId);
    target = p['uri'];
    const unsafe = unsafeResourceUri(target);
    if (unsafe !== null) return bad(`resources/read names the URI "${target.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}", ${unsafe}`, RPC_INVALID_REQUEST, rpcId);
  }
  if (target !== null && (target !== target.trim() || /[\p{Cc}\p{Default_Ignorable_Code_Point}]/u.test(target) || target !== target.normalize('NFKC'))) {
    return bad(`${method} names "${target.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}", which servers that trim or normalize names read as another`, RPC_INVALID_REQUEST, rpcId);
  }
  return { method, id: rpcId, target, arguments: args };
}

// RFC 3986 §3.1: a scheme, in its canonical lower case.
const URI_SCHEME = /^[a-z][a-z0-9+.-]*:/;
// A malformed escape, or the escape of an unreserved character (RFC 3986 §2.3: the same URI as
// the character itself), of a control, "/", "\\" or "#".
const URI_BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})|%(?:[01][0-9A-Fa-f]|7[EeFf]|2[DdEeFf3]|3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa]|5[CcFf])/;

/**
 * Why a resource URI could name another resource to the MCP server than the one Mandate decides
 * on, or null. Cedar compares McpResource uids exactly, so a forbid on
 * McpResource::"file:///etc/passwd" must not be passed by another spelling of that file: a
 * dot segment or an empty one (`file:///tmp/../etc/passwd`, `file:///etc//passwd`), an escaped
 * letter or separator (`file:///etc/%70asswd`, `%2F`), a backslash, a fragment, or upper case
 * in the scheme or the host (RFC 3986 §6.2.2: case-insensitive there).
 */
export function unsafeResourceUri(uri: string): string | null {
  const scheme = URI_SCHEME.exec(uri);
  if (scheme === null) return 'which is not an absolute URI with a lower-case scheme (RFC 3986 §3.1)';
  if (uri.includes('\\') || uri.includes('#')) return 'which holds "\\" or "#": servers read it as "/" or cut it there';
  if (URI_BAD_ESCAPE.test(uri)) return 'which holds a malformed escape or an escaped letter, digit, "-", ".", "_", "~", "/", "\\", "#" or control (another spelling of the same URI)';
  let rest = uri.slice(scheme[0].length);
  const q = rest.indexOf('?');
  if (q >= 0) rest = rest.slice(0, q);
  if (rest.startsWith('//')) {
    const end = rest.indexOf('/', 2);
    const authority = end < 0 ? rest.slice(2) : rest.slice(2, end);
    const host = authority.slice(authority.lastIndexOf('@') + 1);
    if (host !== host.toLowerCase()) return 'whose host is not in lower case (hosts are case-insensitive)';
    rest = end < 0 ? '' : rest.slice(end);
  }
  const segments = rest.split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '.' || segment === '..') return 'which holds a "." or ".." segment (servers resolve it to another path)';
    // The first segment is empty for an absolute path; a trailing "/" leaves an empty last one.
    if (segment === '' && i > 0 && i < segments.length - 1) return 'which holds an empty segment ("//": one "/" to file systems)';
  }
  return null;
}

/** A member of this one object (not below) that aliases a name of `names`, described. */
function aliasIn(object: JsonObject, names: ReadNames): string | null {
  for (const name of Object.keys(object)) {
    const alias = names.aliasOf(name);
    if (alias !== null) return `has the member "${name.replace(/[^\x20-\x7e]/g, '?')}", which ${sameNameReason(name, alias)} read as "${alias}"`;
  }
  return null;
}

function checkMirroredHeaders(call: McpCall, headers: ReadonlyMap<string, string>): McpOutcome | null {
  const method = headers.get('mcp-method');
  if (method !== undefined && method !== call.method) return bad('Mcp-Method header does not match the body', RPC_HEADER_MISMATCH, call.id);
  const name = headers.get('mcp-name');
  // A name that is not plain printable ASCII comes in the =?base64?...?= form (SEP-2243).
  if (name !== undefined && decodeMirrored(name) !== (call.target ?? '')) return bad('Mcp-Name header does not match the body', RPC_HEADER_MISMATCH, call.id);
  return null;
}
