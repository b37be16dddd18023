// Stage 3: request + identity -> Cedar request. The decision model (docs/decision-model.md):
//   principal  Workload::"<SPIFFE ID>" | Unauthenticated::"anonymous"
//   action     Action::"<METHOD> <route template>"
//   resource   Application::"<application>" or the route's template, e.g. Ticket::"{id}"
//   context    http, params, source, destination, time, extensions, body (routes that ask)

import type { Context, EntityJson } from '../policy/cedar.js';
import type { MandateConfig } from '../config/types.js';
import type { CedarRequest, EntityUid, PolicyEngine } from '../policy/engine.js';
import { isJsonContentType, parseJsonBody } from './body.js';
import type { DecodedRequest } from './decode.js';
import type { Identity } from './identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import { deny, ok, type Outcome } from './reasons.js';
import type { CompiledRoute, RouteMatch, RouteTable } from './routes.js';

export const ANONYMOUS_PRINCIPAL: EntityUid = Object.freeze({ type: 'Unauthenticated', id: 'anonymous' });

export interface MappedRequest {
  readonly match: RouteMatch;
  readonly route: CompiledRoute;
  readonly cedar: CedarRequest;
}

export interface MapInputs {
  readonly config: MandateConfig;
  readonly routes: RouteTable;
  readonly engine: PolicyEngine;
  readonly groups: WorkloadGroups;
}

export function mapRequest(request: DecodedRequest, identity: Identity, inputs: MapInputs): Outcome<MappedRequest> {
  const matched = inputs.routes.match(request.method, request.path);
  if (!matched.ok) return matched;
  if (matched.value === null) return deny('no_route', `no route for ${request.method} ${truncate(request.path)}`);
  const { route, params } = matched.value;

  const context: Context = {
    http: {
      method: request.method,
      path: request.path,
      host: request.host,
      scheme: request.scheme,
      query: request.query,
      headers: pickHeaders(request.headers, inputs.config.contextHeaders),
    },
    params,
    source: { address: request.source.address, port: request.source.port, principal: request.source.principal },
    destination: { address: request.destination.address, port: request.destination.port, principal: request.destination.principal },
    time: { epochSeconds: request.epochSeconds },
    extensions: request.extensions,
    identity: identityContext(identity),
  };
  if (route.body) {
    if (request.body === null) return deny('bad_request', `${route.action} expects a JSON body and Envoy sent none (with_request_body)`);
    const contentLength = request.headers.get('content-length');
    const size = typeof request.body === 'string' ? Buffer.byteLength(request.body) : request.body.length;
    if (contentLength !== undefined && Number(contentLength) > size) {
      return deny('bad_request', 'body was truncated before it reached the decision point');
    }
    if (!isJsonContentType(request.headers.get('content-type'))) return deny('bad_request', `${route.action} expects content-type application/json`);
    const body = parseJsonBody(request.body, inputs.config.limits.maxBodyBytes, inputs.config.limits.maxBodyDepth);
    if (!body.ok) return body;
    context['body'] = body.value;
  }

  const resource = { type: route.resourceType, id: route.buildResourceId(params) };
  if (route.tool !== null) context['tool'] = route.tool;
  const principalEntity = buildPrincipal(identity, inputs);
  const principal = principalEntity.uid as EntityUid;
  const own: EntityJson[] = [principalEntity, entityWithStaticParents(inputs.engine, resource, {}, [])];
  return ok({
    match: matched.value,
    route,
    cedar: {
      principal,
      action: { type: 'Action', id: route.action },
      resource,
      context,
      entities: inputs.engine.entitiesFor(own),
    },
  });
}

/** The principal entity for an identity: Workload with its attributes, static parents and pattern groups. */
export function buildPrincipal(identity: Identity, inputs: Pick<MapInputs, 'engine' | 'groups'>): EntityJson {
  if (identity.kind === 'anonymous') return entityWithStaticParents(inputs.engine, ANONYMOUS_PRINCIPAL, {}, []);
  const uid = { type: 'Workload', id: identity.spiffe.id };
  const attrs = { trustDomain: identity.spiffe.trustDomain, path: identity.spiffe.path };
  return entityWithStaticParents(inputs.engine, uid, attrs, inputs.groups.size === 0 ? [] : inputs.groups.groupsFor(identity.spiffe.id));
}

/** An entity for a resource, keeping what the static entities file says of it. */
export function buildResource(uid: EntityUid, inputs: Pick<MapInputs, 'engine'>): EntityJson {
  return entityWithStaticParents(inputs.engine, uid, {}, []);
}

/** The request's own entity, keeping the parents and attributes the static entities file gives it. */
function entityWithStaticParents(engine: PolicyEngine, uid: EntityUid, attrs: Record<string, string>, extraParents: EntityUid[]): EntityJson {
  const known = engine.staticEntity(uid);
  if (known === undefined) return { uid, attrs, parents: extraParents };
  const parents = extraParents.length === 0 ? known.parents : [...known.parents, ...extraParents];
  return { uid, attrs: { ...known.attrs, ...attrs }, parents, ...(known.tags ? { tags: known.tags } : {}) };
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
