// Per-action readers for the compiled path when serving with a schema: one pass over a
// request that both proves it needs no schema and turns it into the values of values.ts.
//
// The proof is the one schema-less evaluation uses (projection.ts compileConformance,
// schemaless.ts): the context conforms to the action's context type with plain values only
// (no extension values, closed records), the principal and resource types are those the action
// applies to, every entity fits its declared type. The readers below accept exactly what those
// checks accept, or less (anything else answers NOT_PROVEN and the request goes to
// cedar-wasm). Only what a policy can read is converted: the context paths the action's
// policies read (the projection's trie) and the attributes some policy reads; the rest is
// checked and left alone, as the projection would leave it out.

import type { EntityJson } from '../cedar.js';
import { resolveType, type CommonTypes, type PathTrie, type SchemaType } from '../projection.js';
import { addEntity, hasCycle } from './inputs.js';
import { Entities, Uid, type EntityData, type Rec, type Value } from './values.js';
import type { CompiledInput } from './inputs.js';

export const NOT_PROVEN: unique symbol = Symbol('not proven');
type Reader = (v: unknown) => Value | typeof NOT_PROVEN;

const primitive = (type: string): string => (type.startsWith('__cedar::') ? type.slice(9) : type);

/**
 * A reader for values of type `t`: NOT_PROVEN unless the value conforms (the rules of
 * compileConformance); the converted value otherwise. `trie`: the paths read below this value
 * (null: all of it). `keep` false: only the check, answering `true` (nothing is allocated).
 */
export function compileReader(t: SchemaType, common: CommonTypes, trie: PathTrie | null, keep = true): Reader {
  const r = resolveType(t, common);
  switch (primitive(r.type)) {
    case 'String':
      return (v) => (typeof v === 'string' ? v : NOT_PROVEN);
    case 'Long':
      return (v) => (Number.isSafeInteger(v) ? (v as number) + 0 : NOT_PROVEN);
    case 'Bool':
    case 'Boolean':
      return (v) => (typeof v === 'boolean' ? v : NOT_PROVEN);
    case 'Set': {
      if (r.element === undefined) return () => NOT_PROVEN;
      const element = compileReader(r.element, common, null, keep);
      if (!keep) return (v) => (Array.isArray(v) && v.every((x) => element(x) !== NOT_PROVEN) ? true : NOT_PROVEN);
      return (v) => {
        if (!Array.isArray(v)) return NOT_PROVEN;
        const out: Value[] = new Array<Value>(v.length);
        for (let i = 0; i < v.length; i++) {
          const x = element(v[i]);
          if (x === NOT_PROVEN) return NOT_PROVEN;
          out[i] = x;
        }
        return out;
      };
    }
    case 'Entity': {
      const name = r.name;
      if (name === undefined) return () => NOT_PROVEN;
      return (v) => {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return NOT_PROVEN;
        const keys = Object.keys(v);
        if (keys.length !== 1 || keys[0] !== '__entity') return NOT_PROVEN;
        const uid = (v as { __entity: unknown }).__entity as { type?: unknown; id?: unknown } | null;
        if (typeof uid !== 'object' || uid === null || uid.type !== name || typeof uid.id !== 'string' || Object.keys(uid).length !== 2) return NOT_PROVEN;
        return keep ? new Uid(name, uid.id) : true;
      };
    }
    case 'Record': {
      if (r.additionalAttributes === true) return () => NOT_PROVEN;
      const whole = trie === null || trie.whole;
      // Per attribute: its reader, and whether its value is kept (read by some policy) or only checked.
      const attributes = new Map<string, { readonly read: Reader; readonly keep: boolean }>();
      const required: string[] = [];
      for (const [name, a] of Object.entries(r.attributes ?? {})) {
        const sub = whole ? null : trie?.children.get(name);
        attributes.set(name, sub === undefined || !keep ? { read: compileReader(a, common, null, false), keep: false } : { read: compileReader(a, common, sub), keep: true });
        if (a.required !== false) required.push(name);
      }
      return (v) => {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return NOT_PROVEN;
        const src = v as Record<string, unknown>;
        if ('__entity' in src || '__extn' in src) return NOT_PROVEN;
        const out = keep ? (Object.create(null) as Record<string, Value>) : null;
        for (const key in src) {
          const value = src[key];
          if (value === undefined) continue;
          const attr = attributes.get(key);
          if (attr === undefined) return NOT_PROVEN;
          const x = attr.read(value);
          if (x === NOT_PROVEN) return NOT_PROVEN;
          if (attr.keep) (out as Record<string, Value>)[key] = x;
        }
        for (let i = 0; i < required.length; i++) if (src[required[i] as string] === undefined) return NOT_PROVEN;
        return out ?? true;
      };
    }
    default:
      return () => NOT_PROVEN; // extension types and anything unknown: cedar-wasm decides
  }
}

export interface EntityTypeDef {
  readonly memberOfTypes?: readonly string[];
  readonly shape?: SchemaType;
  readonly tags?: SchemaType;
}

/**
 * A reader for entities of one type (the rules of schemaless.ts compileEntityCheck): attributes
 * no policy reads are checked and left out, as schema-less evaluation leaves them out.
 */
export function compileEntityReader(def: EntityTypeDef, common: CommonTypes, readAttributes: ReadonlySet<string>): (e: EntityJson) => EntityData | typeof NOT_PROVEN {
  const shape = def.shape === undefined ? null : compileReader(def.shape, common, readTrie(readAttributes));
  const tag = def.tags === undefined ? null : compileReader(def.tags, common, null);
  const parentTypes = new Set(def.memberOfTypes ?? []);
  return (e) => {
    const entity = e as { uid: unknown; attrs?: unknown; parents?: unknown; tags?: unknown };
    const uid = plainUid(entity.uid);
    if (uid === null) return NOT_PROVEN;
    let attrs: Rec;
    if (shape === null) {
      const a = entity.attrs ?? {};
      if (typeof a !== 'object' || a === null || Array.isArray(a) || Object.keys(a).length > 0) return NOT_PROVEN;
      attrs = EMPTY;
    } else {
      const a = shape(entity.attrs ?? {});
      if (a === NOT_PROVEN) return NOT_PROVEN;
      attrs = a as Rec;
    }
    let tags: Rec | null = null;
    if (entity.tags !== undefined) {
      const t = entity.tags;
      if (typeof t !== 'object' || t === null || Array.isArray(t)) return NOT_PROVEN;
      const out = Object.create(null) as Record<string, Value>;
      for (const k of Object.keys(t)) {
        if (tag === null) return NOT_PROVEN;
        const x = tag((t as Record<string, unknown>)[k]);
        if (x === NOT_PROVEN) return NOT_PROVEN;
        out[k] = x;
      }
      tags = out;
    }
    if (!Array.isArray(entity.parents)) return NOT_PROVEN;
    const parents: string[] = [];
    for (const p of entity.parents) {
      const parent = plainUid(p);
      if (parent === null || !parentTypes.has(parent.type)) return NOT_PROVEN;
      parents.push(parent.key);
    }
    return { uid, attrs, parents, tags };
  };
}

const EMPTY: Rec = Object.freeze(Object.create(null) as Rec);

/** A trie that reads exactly these attribute names, each whole. */
function readTrie(names: ReadonlySet<string>): PathTrie {
  return { whole: false, children: new Map([...names].map((n) => [n, { whole: true, children: new Map() }])) };
}

function plainUid(u: unknown): Uid | null {
  if (typeof u !== 'object' || u === null) return null;
  const uid = u as { type?: unknown; id?: unknown };
  if (typeof uid.type !== 'string' || typeof uid.id !== 'string' || Object.keys(uid).length !== 2) return null;
  return new Uid(uid.type, uid.id);
}

export interface RequestReader {
  /** The request as compiled input, or null when it is not proven to need no schema. */
  read(principal: { type: string; id: string }, resource: { type: string; id: string }, context: unknown, entities: readonly EntityJson[]): CompiledInput | null;
}

/** The reader for one action: its appliesTo, its context type, the entity types, and the action entity with its groups. */
export function compileRequestReader(
  action: { readonly id: string; readonly groups: readonly string[] },
  principals: ReadonlySet<string>,
  resources: ReadonlySet<string>,
  context: Reader,
  entityReaders: ReadonlyMap<string, (e: EntityJson) => EntityData | typeof NOT_PROVEN>,
): RequestReader {
  const actionUid = new Uid('Action', action.id);
  const actionData: EntityData = { uid: actionUid, attrs: EMPTY, parents: action.groups.map((g) => new Uid('Action', g).key), tags: null };
  return {
    read(principal, resource, ctx, entities) {
      if (!principals.has(principal.type) || !resources.has(resource.type)) return null;
      const c = context(ctx);
      if (c === NOT_PROVEN) return null;
      const byKey = new Map<string, EntityData>();
      try {
        for (const e of entities) {
          const type = (e.uid as { type?: unknown }).type;
          const reader = typeof type === 'string' ? entityReaders.get(type) : undefined;
          if (reader === undefined) return null;
          const data = reader(e);
          if (data === NOT_PROVEN) return null;
          addEntity(byKey, data);
        }
      } catch {
        return null; // the same entity twice, unequal: Cedar refuses the request
      }
      byKey.set(actionUid.key, actionData);
      // A cycle is possible only when some parent is itself present.
      let linked = false;
      for (const e of byKey.values()) for (const p of e.parents) if (byKey.has(p)) linked = true;
      if (linked && hasCycle(byKey)) return null;
      return { principal: new Uid(principal.type, principal.id), action: actionUid, resource: new Uid(resource.type, resource.id), context: c as Rec, entities: new Entities(byKey) };
    },
  };
}
