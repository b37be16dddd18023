// Generated Cedar requests for differential tests: for a policy version, random requests that
// follow its schema (actions with their principal and resource types, contexts of the declared
// types, with strings drawn from the policies' own literals so that conditions do hold), and a
// share deliberately broken (a required attribute dropped, an extra one, a wrong type), so that
// both the projected path and the plain one are exercised.

import * as cedar from '../../src/policy/cedar.js';
import type { EntityJson } from '../../src/policy/cedar.js';
import type { PolicyEngine } from '../../src/policy/engine.js';
import type { PolicyVersion } from '../../src/policy/loader.js';
import { resolveType, type CommonTypes, type SchemaType } from '../../src/policy/projection.js';
import type { CedarRequest, EntityUid } from '../../src/core/cedar-request.js';

/** mulberry32: a small seeded PRNG, so a failing case can be replayed from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A request independent of any engine: the entities are built per engine, as map.ts does. */
export interface RequestSpec {
  readonly principal: EntityUid;
  readonly principalAttrs: Record<string, unknown>;
  readonly action: EntityUid;
  readonly resource: EntityUid;
  readonly context: Record<string, unknown>;
  readonly argumentTags: Record<string, string> | null;
  readonly broken: boolean;
}

export function materialize(spec: RequestSpec, engine: PolicyEngine): CedarRequest {
  const entity = (uid: EntityUid, attrs: Record<string, unknown>): EntityJson => {
    const known = engine.staticEntity(uid);
    return { uid, attrs: { ...(known?.attrs ?? {}), ...attrs }, parents: engine.parentsFor(uid, []) as EntityJson['parents'] } as EntityJson;
  };
  const own: EntityJson[] = [entity(spec.principal, spec.principalAttrs), entity(spec.resource, {})];
  if (spec.argumentTags !== null) own.push({ uid: { type: 'McpArguments', id: 'call-0' }, attrs: {}, parents: [], tags: spec.argumentTags } as EntityJson);
  return { principal: spec.principal, action: spec.action, resource: spec.resource, context: structuredClone(spec.context) as CedarRequest['context'], entities: engine.entitiesFor(own) };
}

type Namespace = {
  commonTypes?: Record<string, SchemaType>;
  entityTypes: Record<string, unknown>;
  actions: Record<string, { appliesTo?: { principalTypes?: string[]; resourceTypes?: string[]; context?: SchemaType } }>;
};

/** String literals and entity ids the policies mention: values that make conditions hold. */
function vocabulary(version: PolicyVersion): { strings: string[]; ids: Map<string, string[]> } {
  const strings = new Set<string>(['', 'x', 'acme', 'tenant-0', 'tickets.read', 'cases.refund', 'pii']);
  const ids = new Map<string, Set<string>>();
  const addId = (type: string, id: string): void => {
    let set = ids.get(type);
    if (set === undefined) ids.set(type, (set = new Set()));
    set.add(id);
  };
  const walk = (e: unknown): void => {
    if (Array.isArray(e)) {
      e.forEach(walk);
      return;
    }
    if (typeof e !== 'object' || e === null) return;
    const o = e as Record<string, unknown>;
    if (typeof o['Value'] === 'string') strings.add(o['Value']);
    if (typeof o['type'] === 'string' && typeof o['id'] === 'string') addId(o['type'], o['id']);
    Object.values(o).forEach(walk);
  };
  for (const p of version.policies) {
    const json = cedar.policyToJson(p.text);
    if (json.type === 'success') walk(json.json);
  }
  for (const e of version.entities) {
    const u = e.uid as { type: string; id: string };
    addId(u.type, u.id);
  }
  return { strings: [...strings], ids: new Map([...ids].map(([k, v]) => [k, [...v]])) };
}

export function generateRequests(version: PolicyVersion, count: number, seed: number, brokenShare = 0.25): RequestSpec[] {
  const random = seeded(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const resolved = cedar.schemaToJsonWithResolvedTypes(version.schemaText as string);
  if (resolved.type !== 'success') throw new Error('the generator needs a schema');
  const ns = resolved.json[''] as unknown as Namespace;
  const common: CommonTypes = ns.commonTypes ?? {};
  const { strings, ids } = vocabulary(version);
  const entityTypeNames = Object.keys(ns.entityTypes);
  const actions = Object.entries(ns.actions).filter(([, a]) => (a.appliesTo?.principalTypes?.length ?? 0) > 0 && (a.appliesTo?.resourceTypes?.length ?? 0) > 0);

  const value = (t: SchemaType, depth: number): unknown => {
    const r = resolveType(t, common);
    const type = r.type.replace(/^__cedar::/, '');
    if (type === 'String') return pick(strings);
    if (type === 'Long') return Math.floor(random() * 4000) - 100;
    if (type === 'Bool' || type === 'Boolean') return random() < 0.5;
    if (type === 'Set') return Array.from({ length: Math.floor(random() * 4) }, () => value(r.element as SchemaType, depth + 1));
    if (type === 'Entity') return { __entity: { type: r.name as string, id: r.name === 'McpArguments' ? 'call-0' : pick(ids.get(r.name as string) ?? ['e-1']) } };
    if (type === 'Record') {
      const out: Record<string, unknown> = {};
      for (const [name, a] of Object.entries(r.attributes ?? {})) if (a.required !== false || random() < 0.6) out[name] = value(a, depth + 1);
      return out;
    }
    throw new Error(`no generator for type ${type}`);
  };

  // Breaks a context in one place: drop an attribute, add an unknown one, or change a type.
  const breakValue = (v: Record<string, unknown>): void => {
    const records: Record<string, unknown>[] = [];
    const collect = (x: unknown): void => {
      if (typeof x !== 'object' || x === null || Array.isArray(x) || '__entity' in x) return;
      records.push(x as Record<string, unknown>);
      Object.values(x).forEach(collect);
    };
    collect(v);
    const target = pick(records);
    const keys = Object.keys(target);
    const how = random();
    if (how < 0.35 && keys.length > 0) delete target[pick(keys)];
    else if (how < 0.65 || keys.length === 0) target['unexpected'] = 'x';
    else {
      const k = pick(keys);
      target[k] = typeof target[k] === 'string' ? 7 : 'seven';
    }
  };

  const out: RequestSpec[] = [];
  for (let i = 0; i < count; i++) {
    const [actionId, def] = pick(actions);
    const appliesTo = def.appliesTo as Required<NonNullable<(typeof def)['appliesTo']>>;
    const principalType = pick(appliesTo.principalTypes);
    const principalId = principalType === 'Unauthenticated' ? 'anonymous' : pick([...(ids.get(principalType) ?? []), `spiffe://example.org/ns/x/sa/${i}`]);
    const resourceType = pick(appliesTo.resourceTypes);
    // Per-tenant policies name a tenant's agent and its own ticket or tool: pair them often.
    const tenant = /tenant-(\d+)/.exec(principalId)?.[1];
    const own = tenant === undefined ? [] : (ids.get(resourceType) ?? []).filter((id) => id.endsWith(`-${tenant}`));
    const resourceId = own.length > 0 && random() < 0.6 ? pick(own) : pick([...(ids.get(resourceType) ?? []), `${resourceType.toLowerCase()}-${i}`]);
    const context = (appliesTo.context === undefined ? {} : value(appliesTo.context, 0)) as Record<string, unknown>;
    const broken = random() < brokenShare;
    // Broken requests: mostly a broken context; sometimes a principal or resource of a type the
    // action does not apply to (request validation refuses those).
    let principal = { type: principalType, id: principalId };
    let resource = { type: resourceType, id: resourceId };
    const how = broken ? random() : 1;
    if (how < 0.15) principal = { type: pick(entityTypeNames.filter((t) => !appliesTo.principalTypes.includes(t))), id: 'wrong-type' };
    else if (how < 0.3) resource = { type: pick(entityTypeNames.filter((t) => !appliesTo.resourceTypes.includes(t))), id: 'wrong-type' };
    else if (broken) breakValue(context);
    const principalAttrs = principal.type === 'Workload' ? { trustDomain: 'example.org', path: principalId.replace(/^spiffe:\/\/[^/]+/, '') } : {};
    const mcp = context['mcp'] as Record<string, unknown> | undefined;
    const argumentTags = mcp !== undefined ? Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, (_, k) => [`arg${k}`, pick(strings)])) : null;
    out.push({ principal, principalAttrs, action: { type: 'Action', id: actionId }, resource, context, argumentTags, broken });
  }
  return out;
}
