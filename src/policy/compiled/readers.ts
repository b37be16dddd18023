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
import { Entities, newRecord, Uid, type EntityData, type Rec, type Value } from './values.js';
import type { CompiledInput } from './inputs.js';

export const NOT_PROVEN: unique symbol = Symbol('not proven');
type Reader = (v: unknown) => Value | typeof NOT_PROVEN;

const primitive = (type: string): string => (type.startsWith('__cedar::') ? type.slice(9) : type);

/**
 * A reader for values of type `t`: NOT_PROVEN unless the value conforms (the rules of
 * compileConformance); the converted value otherwise. `trie`: the paths read below this value
 * (null: all of it). `keep` false: only the check, answering `true` (nothing is allocated).
 *
 * Generated as JavaScript, one function per record, set and entity type of the schema (as the
 * policies are, compile.ts): a record's attributes become the cases of a switch over its keys
 * and the calls between these functions are direct, which V8 inlines; the same reader built
 * from closures and a Map per record took ~3 us of the ~5.5 us evaluate stage of the
 * benchmark's request. Names are written into the source with JSON.stringify only.
 */
export function compileReader(t: SchemaType, common: CommonTypes, trie: PathTrie | null, keep = true): Reader {
  const functions: string[] = [];
  const entry = readerSource(t, common, trie, keep, functions);
  const factory = new Function('NP', 'Uid', 'newRecord', `'use strict';\n${functions.join('\n')}\nreturn ${entry};`) as (np: typeof NOT_PROVEN, uid: typeof Uid, record: typeof newRecord) => Reader;
  return factory(NOT_PROVEN, Uid, newRecord);
}

/** Adds the function that reads `t` (and those it calls) to `out`; returns its name. */
function readerSource(t: SchemaType, common: CommonTypes, trie: PathTrie | null, keep: boolean, out: string[]): string {
  const r = resolveType(t, common);
  // This function's number is taken before those it calls are added.
  const index = out.length;
  const name = `r${index}`;
  out.push('');
  const done = (body: string): string => {
    out[index] = `function ${name}(v) {\n${body}\n}`;
    return name;
  };
  switch (primitive(r.type)) {
    case 'String':
      return done(`return typeof v === 'string' ? v : NP;`);
    case 'Long':
      // + 0: a -0 reads as 0, as Cedar has no negative zero.
      return done(`return Number.isSafeInteger(v) ? v + 0 : NP;`);
    case 'Bool':
    case 'Boolean':
      return done(`return typeof v === 'boolean' ? v : NP;`);
    case 'Set': {
      if (r.element === undefined) return done('return NP;');
      const element = readerSource(r.element, common, null, keep, out);
      if (!keep) return done(`if (!Array.isArray(v)) return NP;\nfor (let i = 0; i < v.length; i++) if (${element}(v[i]) === NP) return NP;\nreturn true;`);
      return done(
        `if (!Array.isArray(v)) return NP;\nconst out = new Array(v.length);\nfor (let i = 0; i < v.length; i++) {\n  const x = ${element}(v[i]);\n  if (x === NP) return NP;\n  out[i] = x;\n}\nreturn out;`,
      );
    }
    case 'Entity': {
      if (r.name === undefined) return done('return NP;');
      const type = JSON.stringify(r.name);
      return done(
        [
          `if (typeof v !== 'object' || v === null || Array.isArray(v)) return NP;`,
          `const keys = Object.keys(v);`,
          `if (keys.length !== 1 || keys[0] !== '__entity') return NP;`,
          `const uid = v.__entity;`,
          `if (typeof uid !== 'object' || uid === null || uid.type !== ${type} || typeof uid.id !== 'string' || Object.keys(uid).length !== 2) return NP;`,
          keep ? `return new Uid(${type}, uid.id);` : 'return true;',
        ].join('\n'),
      );
    }
    case 'Record': {
      if (r.additionalAttributes === true) return done('return NP;');
      const whole = trie === null || trie.whole;
      const cases: string[] = [];
      let required = 0;
      for (const [attribute, a] of Object.entries(r.attributes ?? {})) {
        const sub = whole ? null : trie?.children.get(attribute);
        // Its value kept (read by some policy) or only checked.
        const kept = sub !== undefined && keep;
        const read = kept ? readerSource(a, common, sub, true, out) : readerSource(a, common, null, false, out);
        const isRequired = a.required !== false;
        if (isRequired) required++;
        const key = JSON.stringify(attribute);
        const count = isRequired ? ' seen++;' : '';
        cases.push(kept ? `case ${key}: { const x = ${read}(value); if (x === NP) return NP; out[${key}] = x;${count} break; }` : `case ${key}: if (${read}(value) === NP) return NP;${count} break;`);
      }
      return done(
        [
          `if (typeof v !== 'object' || v === null || Array.isArray(v)) return NP;`,
          `if ('__entity' in v || '__extn' in v) return NP;`,
          keep ? 'const out = newRecord();' : '',
          'let seen = 0;',
          'for (const key in v) {',
          '  const value = v[key];',
          '  if (value === undefined) continue;',
          '  switch (key) {',
          ...cases.map((c) => `    ${c}`),
          '    default: return NP;',
          '  }',
          '}',
          // Each key comes once from for-in: every required attribute was seen when the count is whole.
          `if (seen !== ${required}) return NP;`,
          keep ? 'return out;' : 'return true;',
        ].join('\n'),
      );
    }
    default:
      return done('return NP;'); // extension types and anything unknown: cedar-wasm decides
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
  // Parents read from a frozen array (the engine's flattened ancestors, shared by every request
  // of one principal): its keys and their set are read once and kept with it.
  const frozenParents = new WeakMap<object, { readonly keys: readonly string[]; readonly set: ReadonlySet<string> } | typeof NOT_PROVEN>();
  const readParents = (list: readonly unknown[]): readonly string[] | typeof NOT_PROVEN => {
    const parents: string[] = [];
    for (const p of list) {
      const parent = plainUid(p);
      if (parent === null || !parentTypes.has(parent.type)) return NOT_PROVEN;
      parents.push(parent.key);
    }
    return parents;
  };
  // Entities read from deeply frozen objects (the principal, built once per workload and shared
  // by its requests: principal.ts): nothing under them can change, so each is read once.
  const frozenEntities = new WeakMap<object, EntityData | typeof NOT_PROVEN>();
  const read = (e: EntityJson): EntityData | typeof NOT_PROVEN => {
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
    const list = entity.parents;
    if (!Array.isArray(list)) return NOT_PROVEN;
    if (list.length > 0 && Object.isFrozen(list)) {
      let known = frozenParents.get(list);
      // Kept only for a frozen array of frozen uids: nothing can change under the kept keys.
      if (known === undefined && list.every((p) => Object.isFrozen(p))) {
        const keys = readParents(list);
        known = keys === NOT_PROVEN ? NOT_PROVEN : { keys: Object.freeze(keys as string[]), set: new Set(keys as string[]) };
        frozenParents.set(list, known);
      }
      if (known === NOT_PROVEN) return NOT_PROVEN;
      if (known !== undefined) return { uid, attrs, parents: known.keys, parentSet: known.set, tags };
    }
    const parents = readParents(list);
    if (parents === NOT_PROVEN) return NOT_PROVEN;
    return { uid, attrs, parents, tags };
  };
  return (e) => {
    if (!Object.isFrozen(e)) return read(e);
    let known = frozenEntities.get(e);
    if (known === undefined) {
      known = read(e);
      if (deeplyFrozen(e, 0)) frozenEntities.set(e, known);
    }
    return known;
  };
}

/**
 * Whether a value and everything in it are frozen data (checked once per value kept): a getter
 * could answer differently on every read, frozen or not.
 */
function deeplyFrozen(v: unknown, depth: number): boolean {
  if (typeof v !== 'object' || v === null) return typeof v !== 'function';
  if (!Object.isFrozen(v) || depth > 64) return false;
  for (const d of Object.values(Object.getOwnPropertyDescriptors(v))) if (!('value' in d) || !deeplyFrozen(d.value, depth + 1)) return false;
  return true;
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
  const actionParents = Object.freeze(action.groups.map((g) => new Uid('Action', g).key));
  const actionData: EntityData = { uid: actionUid, attrs: EMPTY, parents: actionParents, parentSet: new Set(actionParents), tags: null };
  return {
    read(principal, resource, ctx, entities) {
      if (!principals.has(principal.type) || !resources.has(resource.type)) return null;
      const c = context(ctx);
      if (c === NOT_PROVEN) return null;
      const byKey = new Map<string, EntityData>();
      // The request's principal and resource are most often the very uid objects of two of its
      // entities (check/map.ts): their Uids are then the ones read with them (the principal's,
      // from a frozen entity, read once per workload with its key already hashed).
      let principalUid: Uid | null = null;
      let resourceUid: Uid | null = null;
      try {
        for (const e of entities) {
          const type = (e.uid as { type?: unknown }).type;
          const reader = typeof type === 'string' ? entityReaders.get(type) : undefined;
          if (reader === undefined) return null;
          const data = reader(e);
          if (data === NOT_PROVEN) return null;
          addEntity(byKey, data);
          if (e.uid === principal) principalUid = data.uid;
          if (e.uid === resource) resourceUid = data.uid;
        }
      } catch {
        return null; // the same entity twice, unequal: Cedar refuses the request
      }
      byKey.set(actionUid.key, actionData);
      // A cycle is possible only when some parent is itself present.
      let linked = false;
      for (const e of byKey.values()) for (const p of e.parents) if (byKey.has(p)) linked = true;
      if (linked && hasCycle(byKey)) return null;
      return { principal: principalUid ?? new Uid(principal.type, principal.id), action: actionUid, resource: resourceUid ?? new Uid(resource.type, resource.id), context: c as Rec, entities: new Entities(byKey, linked) };
    },
  };
}
