// Stage 3: request + identity -> Cedar request. The decision model (docs/decision-model.md):
//   principal  Workload::"<SPIFFE ID>" | Unauthenticated::"anonymous"
//   action     Action::"<METHOD> <route template>"
//   resource   Application::"<application>" or the route's template, e.g. Ticket::"{id}"
//   context    http, params, source, destination, time, extensions, body (routes that ask)

import { basename } from 'node:path';
import type { Context, EntityJson } from '../policy/cedar.js';
import { HTTP_METHODS, METHOD_OVERRIDE_HEADERS, type MandateConfig } from '../config/types.js';
import type { PolicyEngine } from '../policy/engine.js';
import { isJsonContentType, isMethodParameter, methodMember, parseJsonBody, readBodyText } from './body.js';
import { argumentsDigest, canonicalJson } from './jcs.js';
import type { JsonObject, JsonValue } from '../json/strict.js';
import { parseMcp, RPC_HEADER_MISMATCH, RPC_INVALID_PARAMS, RPC_INVALID_REQUEST, type McpCall } from './mcp.js';
import { mirroredMismatch } from './mcp-headers.js';
import { validate } from '../json/schema.js';
import type { DecodedRequest } from './decode.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { deny, ok, type Denial, type Outcome } from '../core/reasons.js';
import type { CompiledRoute, RouteMatch, RouteTable } from './routes.js';
import type { CedarRequest, EntityUid } from '../core/cedar-request.js';
import type { Identity } from '../core/identity.js';
import { buildPrincipal, buildResource } from '../policy/principal.js';


export interface MappedCall {
  readonly cedar: CedarRequest;
  /** context.tool: the tool this call uses, if any. */
  readonly tool: string | null;
  /** SHA-256 of the RFC 8785 form of the call's arguments (MCP tools/call, prompts/get), or null. */
  readonly argumentsDigest: string | null;
}

export interface MappedRequest {
  readonly match: RouteMatch;
  readonly route: CompiledRoute;
  /** The first call; for an MCP batch, `calls` holds every call (all must be allowed). */
  readonly cedar: CedarRequest;
  readonly calls: readonly MappedCall[];
  /** MCP routes: the JSON-RPC id a deny answers (null for a batch or a notification). */
  readonly rpcId: string | number | null;
  /** Whether the request needs a task token: the route says so, or, by default, it calls a tool. */
  readonly requiresTask: boolean;
}

/** A deny from map that must be answered as a JSON-RPC error (MCP routes). */
export type MapDenial = Denial & { readonly rpcCode?: number; readonly rpcId?: string | number | null };

export interface MapInputs {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly engine: PolicyEngine;
  readonly groups: WorkloadGroups;
}

export function mapRequest(request: DecodedRequest, identity: Identity, inputs: MapInputs): Outcome<MappedRequest> | MapDenial {
  const method = effectiveMethod(request, inputs.routes);
  if (!method.ok) return method;
  const matched = inputs.routes.match(method.value, request.path);
  if (!matched.ok) return matched;
  if (matched.value === null) return deny('no_route', `no route for ${method.value} ${truncate(request.path)}`);
  const { route, params } = matched.value;

  const context: Context = {
    http: {
      method: method.value,
      path: request.normalizedPath,
      host: request.host,
      scheme: request.scheme,
      query: request.normalizedQuery,
      headers: pickHeaders(request.headers, inputs.config.contextHeaders),
    },
    params,
    source: { address: request.source.address, port: request.source.port, principal: request.source.principal },
    destination: { address: request.destination.address, port: request.destination.port, principal: request.destination.principal },
    time: { epochSeconds: request.epochSeconds },
    extensions: request.extensions,
    identity: identityContext(identity),
  };
  const resource = { type: route.resourceType, id: route.buildResourceId(params) };
  const principalEntity = buildPrincipal(identity, inputs);
  const principal = principalEntity.uid as EntityUid;

  if (route.mcp !== null) return mapMcp(request, route, matched.value, context, principalEntity, inputs);

  if (route.body) {
    if (request.body === null) return deny('bad_request', `${route.action} expects a JSON body and Envoy sent none (with_request_body)`);
    const text = readBodyText(request.body, request.headers, inputs.config.limits.maxBodyBytes);
    if (!text.ok) return text;
    if (!isJsonContentType(request.headers.get('content-type'))) return deny('bad_request', `${route.action} expects content-type application/json`);
    const body = parseJsonBody(text.value, inputs.config.limits.maxBodyBytes, inputs.config.limits.maxBodyDepth);
    if (!body.ok) return body;
    const override = methodMember(body.value);
    if (override !== null) return deny('bad_request', `the body carries a ${JSON.stringify(override)} member, which frameworks such as Laravel take for another method than the request's`);
    const alias = inputs.engine.readNames().findAlias(body.value as JsonValue, 'body');
    if (alias !== null) return deny('bad_request', `body is refused: ${alias}`);
    context['body'] = body.value;
  }
  if (route.tool !== null) context['tool'] = route.tool;
  const own: EntityJson[] = [principalEntity, buildResource(resource, inputs)];
  const cedar: CedarRequest = { principal, action: { type: 'Action', id: route.action }, resource, context, entities: inputs.engine.entitiesFor(own) };
  return ok({ match: matched.value, route, cedar, calls: [{ cedar, tool: route.tool, argumentsDigest: null }], rpcId: null, requiresTask: route.requireTask ?? route.tool !== null });
}

/**
 * An MCP endpoint: one Cedar request per JSON-RPC call in the body (docs/tool-calls.md).
 *   action    Action::"mcp:<method>"
 *   resource  Tool::"<server>/<name>" | McpResource::"<uri>" | Prompt::"<server>/<name>" | McpServer::"<server>"
 *   context   the HTTP context plus mcp {method, protocolVersion, requestId, arguments, argumentsDigest, approved}
 * Arguments become the tags of an McpArguments entity (strings as they are, other values as
 * canonical JSON): Cedar records are closed, entity tags are not.
 */
function mapMcp(request: DecodedRequest, route: CompiledRoute, match: RouteMatch, base: Context, principalEntity: EntityJson, inputs: MapInputs): Outcome<MappedRequest> | MapDenial {
  const limits = inputs.config.limits;
  if (request.body === null) return { ...deny('bad_request', 'an MCP request needs its body: Envoy must send it (with_request_body)'), rpcCode: RPC_INVALID_REQUEST, rpcId: null };
  const text = readBodyText(request.body, request.headers, limits.maxBodyBytes);
  if (!text.ok) return { ...text, rpcCode: RPC_INVALID_REQUEST, rpcId: null };
  const parsed = parseMcp(text.value, request.headers, { maxDepth: limits.maxBodyDepth + 3, maxBatchCalls: limits.maxBatchCalls });
  if (!parsed.ok) return parsed as MapDenial;
  const { calls, batch, protocolVersion } = parsed.value;
  const { server, tools: pinned } = route.mcp as NonNullable<CompiledRoute['mcp']>;
  const mapped: MappedCall[] = [];
  for (const [i, call] of calls.entries()) {
    let resource: EntityUid;
    let tool: string | null = null;
    if (call.method === 'tools/call') resource = { type: 'Tool', id: (tool = `${server}/${call.target as string}`) };
    else if (call.method === 'prompts/get') resource = { type: 'Prompt', id: `${server}/${call.target as string}` };
    else if (call.method === 'resources/read') resource = { type: 'McpResource', id: call.target as string };
    else resource = { type: 'McpServer', id: server };
    const argsUid = { type: 'McpArguments', id: `call-${i}` };
    const tags: Record<string, string> = {};
    let digest = '';
    if (call.arguments !== null) {
      const depth = depthOf(call.arguments, limits.maxBodyDepth + 1);
      if (depth > limits.maxBodyDepth) return { ...deny('bad_request', `params.arguments is nested deeper than ${limits.maxBodyDepth} levels`), rpcCode: RPC_INVALID_REQUEST, rpcId: call.id };
      // Pinned tools: the arguments the policy reads are those the tool accepts, each of the
      // type its inputSchema gives it (a tag "true" is then the boolean or the string, never either).
      if (pinned !== null && call.method === 'tools/call') {
        const tool = pinned.tools.get(call.target as string);
        if (tool === undefined) return { ...deny('bad_request', `tools/call of "${(call.target as string).slice(0, 64)}", which is not in the pinned tool list of the ${server} server (${basename(pinned.file)})`), rpcCode: RPC_INVALID_PARAMS, rpcId: call.id };
        const why = validate(tool.schema, call.arguments as JsonValue, 'params.arguments');
        if (why !== null) return { ...deny('bad_request', `the arguments of ${server}/${(call.target as string).slice(0, 64)} do not conform to its pinned inputSchema: ${why}`), rpcCode: RPC_INVALID_PARAMS, rpcId: call.id };
        const mirrored = mirroredMismatch(tool, call.arguments as JsonObject, request.headers);
        if (mirrored !== null) return { ...deny('bad_request', mirrored), rpcCode: RPC_HEADER_MISMATCH, rpcId: call.id };
      }
      const alias = inputs.engine.readNames().findAlias(call.arguments as JsonValue, 'params.arguments');
      if (alias !== null) return { ...deny('bad_request', alias), rpcCode: RPC_INVALID_REQUEST, rpcId: call.id };
      for (const [k, v] of Object.entries(call.arguments)) if (v !== null) tags[k] = typeof v === 'string' ? v : canonicalJson(v);
      digest = argumentsDigest(call.arguments);
    }
    const context: Context = {
      ...base,
      mcp: { method: call.method, protocolVersion, requestId: call.id === null ? '' : String(call.id), arguments: { __entity: argsUid }, argumentsDigest: digest, approved: false },
    };
    if (tool !== null) context['tool'] = tool;
    const own: EntityJson[] = [principalEntity, buildResource(resource, inputs), { uid: argsUid, attrs: {}, parents: [], tags }];
    mapped.push({
      cedar: { principal: principalEntity.uid as EntityUid, action: { type: 'Action', id: `mcp:${call.method}` }, resource, context, entities: inputs.engine.entitiesFor(own) },
      tool,
      argumentsDigest: call.arguments === null ? null : digest,
    });
  }
  const first = mapped[0] as MappedCall;
  const requiresTask = route.requireTask ?? calls.some((c) => c.method === 'tools/call');
  return ok({ match, route, cedar: first.cedar, calls: mapped, rpcId: batch ? null : (calls[0] as McpCall).id, requiresTask });
}

/**
 * The method the upstream will execute. A method-override header (X-HTTP-Method-Override and
 * its spellings) makes frameworks that honour it take another method than the request line's:
 * refused unless the route matched by the request's own method says its upstream honours that
 * header, in which case the overriding method is the one decided. A `_method` query parameter
 * (Symfony and Laravel read it on POST, Express's method-override when configured so) is
 * refused always.
 */
function effectiveMethod(request: DecodedRequest, routes: RouteTable): Outcome<string> {
  if (request.query !== '' && queryNamesMethod(request.query)) {
    return deny('bad_request', 'the query carries a _method parameter, which frameworks such as Symfony and Laravel take for another method than the request\'s');
  }
  let header: string | null = null;
  for (const name of METHOD_OVERRIDE_HEADERS) {
    if (!request.headers.has(name)) continue;
    if (header !== null) return deny('bad_request', `the request carries two method-override headers (${header}, ${name})`);
    header = name;
  }
  if (header === null) return ok(request.method);
  const own = routes.match(request.method, request.path);
  if (!own.ok) return own;
  if (own.value === null || own.value.route.methodOverride !== header) {
    return deny('bad_request', `the ${header} header asks the upstream for another method, and this route does not declare that it honours it (methodOverride)`);
  }
  const value = (request.headers.get(header) as string).trim();
  if (!(HTTP_METHODS as readonly string[]).includes(value)) return deny('bad_request', `${header} names no known method`);
  return ok(value);
}

/**
 * Whether a query parameter is `_method` to some framework: names decoded ("+" a space, escapes),
 * then read as PHP reads them (" ", "." and "[" become "_": `?.method=` is $_GET['_method']),
 * in any case.
 */
function queryNamesMethod(query: string): boolean {
  // A quick pass for the usual query: no "method" and no escape that could spell it.
  if (!/method|%/i.test(query)) return false;
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    let name = (eq < 0 ? pair : pair.slice(0, eq)).replaceAll('+', ' ');
    try {
      name = decodeURIComponent(name);
    } catch {
      // a malformed escape: the raw name
    }
    if (isMethodParameter(name)) return true;
  }
  return false;
}

/** Depth of a JSON value, counting stops at `limit` (so a hostile 1,000-level value costs little). */
function depthOf(value: unknown, limit: number, depth = 0): number {
  if (depth >= limit || value === null || typeof value !== 'object') return depth;
  let max = depth + 1;
  for (const v of Array.isArray(value) ? value : Object.values(value)) {
    max = Math.max(max, depthOf(v, limit, depth + 1));
    if (max >= limit) break;
  }
  return max;
}

/** context.identity: how the caller was identified (docs/identity.md). */
function identityContext(identity: Identity): Context {
  if (identity.kind === 'anonymous') return { kind: 'anonymous', trustDomain: '' };
  const out: Context = { kind: identity.kind, trustDomain: identity.spiffe.trustDomain };
  if (identity.jwt !== null) {
    out['aud'] = [...identity.jwt.aud];
    out['exp'] = identity.jwt.exp;
    if (identity.jwt.iat !== null) out['iat'] = identity.jwt.iat;
  }
  return out;
}

function pickHeaders(headers: ReadonlyMap<string, string>, allowlist: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of allowlist) {
    const value = headers.get(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function truncate(s: string): string {
  return s.length > 128 ? `${s.slice(0, 128)}...` : s;
}
