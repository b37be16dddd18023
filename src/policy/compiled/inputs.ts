// A request's JSON (principal, action, resource, context, entities: the form cedar-wasm takes
// without a schema) read into the values of values.ts. Only inputs whose meaning is certain are
// read; anything else makes the reader answer null, and the request goes to cedar-wasm for
// Cedar's own answer: an `__extn` that is not a known function applied to valid arguments, an
// `__entity` that is not exactly a type and an id, null, non-integer numbers and integers beyond ±2^53 given as doubles (a bigint is
// exact and is read), an entity listed twice, a cycle among parents (Cedar refuses both),
// entity JSON with fields Cedar does not define.

import { callExtension } from './extensions.js';
import { Entities, eq, Uid, type EntityData, type Rec, type Value } from './values.js';

/** Thrown by the readers (here and schema-reader.ts) for input they do not read with certainty: cedar-wasm decides it. */
export class OutOfDomain extends Error {}
export const OUT = new OutOfDomain('outside the compiled evaluator');

export interface CompiledInput {
  readonly principal: Uid;
  readonly action: Uid;
  readonly resource: Uid;
  readonly context: Rec;
  readonly entities: Entities;
}

export interface JsonRequest {
  readonly principal: unknown;
  readonly action: unknown;
  readonly resource: unknown;
  readonly context: unknown;
  readonly entities: readonly unknown[];
}

/** The request as values, or null when any part is outside what the compiled path reads with certainty. */
export function readRequest(request: JsonRequest): CompiledInput | null {
  try {
    const context = readValue(request.context);
    if (typeof context !== 'object' || context instanceof Uid || Array.isArray(context)) return null;
    return {
      principal: readUid(request.principal),
      action: readUid(request.action),
      resource: readUid(request.resource),
      context: context as Rec,
      entities: readEntities(request.entities),
    };
  } catch (err) {
    if (err instanceof OutOfDomain) return null;
    throw err;
  }
}

/** Entities alone (the runner reads a file's entities once for all its requests). */
export function readEntityList(list: readonly unknown[]): Entities | null {
  try {
    return readEntities(list);
  } catch (err) {
    if (err instanceof OutOfDomain) return null;
    throw err;
  }
}

/**
 * Only the hierarchy of a list of entities (uids and parents; attributes are not read), for the
 * scope index: an entity listed twice gets the parents of both, a superset, which an index may
 * over-approximate. Null when a uid or parent is not read with certainty.
 */
export function readHierarchy(list: readonly unknown[]): Entities | null {
  try {
    const byKey = new Map<string, EntityData>();
    for (const item of list) {
      const e = item as { uid?: unknown; parents?: unknown };
      if (typeof item !== 'object' || item === null || !Array.isArray(e.parents)) return null;
      const uid = readUid(e.uid);
      const parents = (e.parents as unknown[]).map((p) => readUid(p).key);
      const before = byKey.get(uid.key);
      byKey.set(uid.key, { uid, attrs: NO_ATTRIBUTES, parents: before === undefined ? parents : [...before.parents, ...parents], tags: null });
    }
    return new Entities(byKey);
  } catch (err) {
    if (err instanceof OutOfDomain) return null;
    throw err;
  }
}

const NO_ATTRIBUTES: Rec = Object.freeze(Object.create(null) as Rec);

/** A JSON value (no schema) as a Cedar value, or null. */
export function readJsonValue(v: unknown): Value | null {
  try {
    return readValue(v);
  } catch (err) {
    if (err instanceof OutOfDomain) return null;
    throw err;
  }
}

/** `{"__entity": {type, id}}` or `{type, id}`, exactly those fields. */
export function readUid(u: unknown): Uid {
  if (typeof u !== 'object' || u === null || Array.isArray(u)) throw OUT;
  let o = u as Record<string, unknown>;
  if (Object.hasOwn(o, '__entity')) {
    if (Object.keys(o).length !== 1) throw OUT;
    o = o['__entity'] as Record<string, unknown>;
    if (typeof o !== 'object' || o === null) throw OUT;
  }
  const type = o['type'];
  const id = o['id'];
  if (typeof type !== 'string' || typeof id !== 'string' || Object.keys(o).length !== 2) throw OUT;
  return new Uid(type, id);
}

function readValue(v: unknown): Value {
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      if (!Number.isSafeInteger(v)) throw OUT;
      return v + 0;
    case 'bigint': {
      const n = Number(v);
      return Number.isSafeInteger(n) ? n : v;
    }
    case 'object': {
      if (v === null) throw OUT;
      if (Array.isArray(v)) return v.map(readValue);
      if (Object.hasOwn(v, '__entity')) return readUid(v);
      if (Object.hasOwn(v, '__extn')) {
        if (Object.keys(v).length !== 1) throw OUT;
        return readExtension((v as { __extn: unknown }).__extn);
      }
      const out = Object.create(null) as Record<string, Value>;
      for (const k of Object.keys(v)) out[k] = readValue((v as Record<string, unknown>)[k]);
      return out;
    }
    default:
      throw OUT;
  }
}

/** `{fn, arg}` or `{fn, args}`: the extension function applied (data is a restricted expression). */
export function readExtension(call: unknown): Value {
  if (typeof call !== 'object' || call === null || Array.isArray(call)) throw OUT;
  const c = call as { fn?: unknown; arg?: unknown; args?: unknown };
  const keys = Object.keys(c);
  if (typeof c.fn !== 'string' || keys.length !== 2) throw OUT;
  let args: unknown[];
  if (Object.hasOwn(c, 'arg')) args = [c.arg];
  else if (Array.isArray(c.args)) args = c.args;
  else throw OUT;
  try {
    return callExtension(c.fn, args.map(readValue)) as Value;
  } catch (err) {
    if (err instanceof OutOfDomain) throw err;
    throw OUT; // Cedar refuses the data
  }
}

function readRecord(v: unknown): Rec {
  const r = readValue(v);
  if (typeof r !== 'object' || r instanceof Uid || Array.isArray(r)) throw OUT;
  return r as Rec;
}

const ENTITY_FIELDS = new Set(['uid', 'attrs', 'parents', 'tags']);

function readEntities(list: readonly unknown[]): Entities {
  const byKey = new Map<string, EntityData>();
  for (const item of list) {
    if (typeof item !== 'object' || item === null) throw OUT;
    const e = item as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!ENTITY_FIELDS.has(k)) throw OUT;
    if (!Array.isArray(e['parents']) || e['attrs'] === undefined) throw OUT;
    const uid = readUid(e['uid']);
    const parents = (e['parents'] as unknown[]).map((p) => readUid(p).key);
    addEntity(byKey, { uid, attrs: readRecord(e['attrs']), parents, tags: e['tags'] === undefined ? null : readRecord(e['tags']) });
  }
  if (hasCycle(byKey)) throw OUT; // Cedar: the parent graph has a cycle
  return new Entities(byKey);
}

/**
 * Adds an entity. Cedar takes the same entity listed twice when both are equal (uid, attributes,
 * parents as a set, tags) and refuses the data otherwise ("duplicate entity entry").
 */
export function addEntity(byKey: Map<string, EntityData>, e: EntityData): void {
  const before = byKey.get(e.uid.key);
  if (before === undefined) {
    byKey.set(e.uid.key, e);
    return;
  }
  const parents = new Set(before.parents);
  const same =
    eq(before.attrs, e.attrs) &&
    eq(before.tags ?? EMPTY, e.tags ?? EMPTY) &&
    parents.size === new Set(e.parents).size &&
    e.parents.every((p) => parents.has(p));
  if (!same) throw OUT;
}

const EMPTY: Rec = Object.freeze(Object.create(null) as Rec);

/** Whether parents form a cycle through the entities present (self-parenting included). */
export function hasCycle(byKey: ReadonlyMap<string, EntityData>): boolean {
  const state = new Map<string, 1 | 2>(); // 1: on the path, 2: done
  for (const start of byKey.keys()) {
    if (state.has(start)) continue;
    const stack: [string, number][] = [[start, 0]];
    state.set(start, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [string, number];
      const parents = byKey.get(top[0])?.parents ?? [];
      if (top[1] >= parents.length) {
        state.set(top[0], 2);
        stack.pop();
        continue;
      }
      const next = parents[top[1]++] as string;
      if (!byKey.has(next)) continue;
      const s = state.get(next);
      if (s === 1) return true;
      if (s === undefined) {
        state.set(next, 1);
        stack.push([next, 0]);
      }
    }
  }
  return false;
}
