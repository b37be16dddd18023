// Cedar values as the compiled evaluator holds them (compile.ts), and the operations on them
// with Cedar's semantics (FACTS: Cedar section; cedar-spec Evaluator.lean and Value.lean are the
// definition). Representation, chosen so that a request's JSON needs little conversion:
//   Bool    -> boolean
//   String  -> string
//   Long    -> number when a safe integer, bigint otherwise (always that canonical form, so
//              that === compares two Longs exactly)
//   Entity  -> Uid
//   Set     -> array (duplicates may be present; every operation reads it as a set)
//   Record  -> object with a null prototype (any name is an own property, `__proto__` too)
//   Extension -> Ext (extensions.ts: decimal, ipaddr, datetime, duration)
//
// An evaluation error is thrown as a CedarError; the authorizer turns it into "this policy
// errored", which is all Cedar's answer says about it (the kind of error is not compared).

import { CedarExtError, callExtension, Datetime, Duration, Ext } from './extensions.js';

export { Ext };

export class CedarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CedarError';
  }
}

export class Uid {
  /** Unique per (type, id): the key of the entity store. */
  readonly key: string;
  constructor(
    readonly type: string,
    readonly id: string,
  ) {
    this.key = uidKey(type, id);
  }
}

export function uidKey(type: string, id: string): string {
  return `${type.length}:${type}${id}`;
}

export type Value = boolean | string | number | bigint | Uid | Ext | readonly Value[] | Rec;
export interface Rec {
  readonly [name: string]: Value;
}

/**
 * What records built per request sit on: an empty, frozen object with no prototype. Nothing of
 * Object.prototype is behind a record (`has` and `get` read `r[name] !== undefined`, so a
 * `toString` there would be an attribute), as with Object.create(null); but V8 keeps an
 * object made from a prototype in fast mode, where Object.create(null) gives a dictionary.
 * Only for records whose names come from the schema or the policies (a bounded set of shapes);
 * names a request chooses (tags) go into dictionaries.
 */
const RECORD_PROTOTYPE: object = Object.freeze(Object.create(null) as object);

/** A new, empty record to fill (see RECORD_PROTOTYPE). */
export function newRecord(): Record<string, Value> {
  return Object.create(RECORD_PROTOTYPE) as Record<string, Value>;
}

export interface EntityData {
  readonly uid: Uid;
  readonly attrs: Rec;
  /** Direct parents' keys. */
  readonly parents: readonly string[];
  /** The same keys as a set, when a reader kept one (shared between requests: never mutated). */
  readonly parentSet?: ReadonlySet<string>;
  readonly tags: Rec | null;
}

const NO_ANCESTORS: ReadonlySet<string> = new Set<string>();

/** The entities of one request, with transitive ancestors computed on first use. */
export class Entities {
  /** Created on first use: most requests ask for the ancestors of two entities or none. */
  private closure: Map<string, ReadonlySet<string>> | null = null;
  /**
   * `linked` false: no entity's parent is itself among these entities (the reader checked), so an
   * entity's ancestors are exactly its direct parents.
   */
  constructor(
    readonly byKey: ReadonlyMap<string, EntityData>,
    private readonly linked = true,
  ) {}

  get(key: string): EntityData | undefined {
    return this.byKey.get(key);
  }

  /** Every ancestor of `key` (not itself), following parents through the entities present. */
  ancestors(key: string): ReadonlySet<string> {
    const entity = this.byKey.get(key);
    if (entity === undefined || entity.parents.length === 0) return NO_ANCESTORS;
    if (!this.linked && entity.parentSet !== undefined) return entity.parentSet;
    const parents = entity.parents;
    this.closure ??= new Map();
    let out = this.closure.get(key);
    if (out !== undefined) return out;
    const found = new Set<string>();
    const stack = [...parents];
    while (stack.length > 0) {
      const k = stack.pop() as string;
      if (found.has(k)) continue;
      found.add(k);
      const e = this.byKey.get(k);
      if (e !== undefined) for (const p of e.parents) if (!found.has(p)) stack.push(p);
    }
    out = found;
    this.closure.set(key, out);
    return out;
  }
}

const MIN_LONG = -(2n ** 63n);
const MAX_LONG = 2n ** 63n - 1n;

function typeName(v: Value): string {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number' || typeof v === 'bigint') return 'long';
  if (v instanceof Uid) return 'entity';
  if (v instanceof Ext) return v.kind;
  if (Array.isArray(v)) return 'set';
  return 'record';
}

function typeError(expected: string, got: Value): CedarError {
  return new CedarError(`type error: expected ${expected}, got ${typeName(got)}`);
}

export function isLong(v: Value): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

function isRecord(v: Value): v is Rec {
  return typeof v === 'object' && !(v instanceof Uid) && !(v instanceof Ext) && !Array.isArray(v);
}

/** The canonical form of an exact 64-bit result, or an overflow error. */
function long(big: bigint, op: string): number | bigint {
  if (big < MIN_LONG || big > MAX_LONG) throw new CedarError(`integer overflow in ${op}`);
  const n = Number(big);
  return Number.isSafeInteger(n) ? n : big;
}

export function bool(v: Value): boolean {
  if (typeof v !== 'boolean') throw typeError('bool', v);
  return v;
}

export function add(a: Value, b: Value): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a + b;
    if (Number.isSafeInteger(r)) return r + 0;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return long(BigInt(a) + BigInt(b), '+');
}

export function sub(a: Value, b: Value): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a - b;
    if (Number.isSafeInteger(r)) return r + 0;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return long(BigInt(a) - BigInt(b), '-');
}

export function mul(a: Value, b: Value): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    // A product of two doubles is correctly rounded: when it is a safe integer the exact
    // product was too (an exact product of 2^53 or more cannot round below 2^53).
    const r = a * b;
    if (Number.isSafeInteger(r)) return r + 0;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return long(BigInt(a) * BigInt(b), '*');
}

export function neg(a: Value): number | bigint {
  if (typeof a === 'number') return 0 - a;
  if (typeof a !== 'bigint') throw typeError('long', a);
  return long(-a, 'negation');
}

/**
 * The operands of <, <=, >, >= as comparable numbers: two longs, two datetimes or two durations
 * (Cedar 4 compares datetime and duration values with these operators too).
 */
function ordered(a: Value, b: Value): [number | bigint, number | bigint] {
  if (isLong(a)) {
    if (!isLong(b)) throw typeError('long', b);
    return [a, b];
  }
  if (a instanceof Datetime) {
    if (!(b instanceof Datetime)) throw typeError('datetime', b);
    return [a.v, b.v];
  }
  if (a instanceof Duration) {
    if (!(b instanceof Duration)) throw typeError('duration', b);
    return [a.v, b.v];
  }
  throw typeError('long, datetime or duration', a);
}

export function lt(a: Value, b: Value): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  const [x, y] = ordered(a, b);
  return x < y;
}

export function le(a: Value, b: Value): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a <= b;
  const [x, y] = ordered(a, b);
  return x <= y;
}

/** Cedar's ==: structural, false across types, never an error. */
export function eq(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof Uid) return b instanceof Uid && a.key === b.key;
  if (b instanceof Uid) return false;
  if (a instanceof Ext) return b instanceof Ext && a.equals(b);
  if (b instanceof Ext) return false;
  const aSet = Array.isArray(a);
  if (aSet !== Array.isArray(b)) return false;
  if (aSet) return setEq(a as readonly Value[], b as readonly Value[]);
  return recordEq(a as Rec, b as Rec);
}

function setEq(a: readonly Value[], b: readonly Value[]): boolean {
  for (const x of a) if (!member(b, x)) return false;
  for (const y of b) if (!member(a, y)) return false;
  return true;
}

function recordEq(a: Rec, b: Rec): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    const bv = b[k];
    if (bv === undefined || !eq(a[k] as Value, bv)) return false;
  }
  return true;
}

function member(set: readonly Value[], v: Value): boolean {
  if (typeof v !== 'object') {
    for (const x of set) if (x === v) return true;
    return false;
  }
  for (const x of set) if (eq(x, v)) return true;
  return false;
}

function set(v: Value): readonly Value[] {
  if (!Array.isArray(v)) throw typeError('set', v);
  return v as readonly Value[];
}

export function contains(s: Value, v: Value): boolean {
  return member(set(s), v);
}

export function containsAll(a: Value, b: Value): boolean {
  const sa = set(a);
  for (const x of set(b)) if (!member(sa, x)) return false;
  return true;
}

export function containsAny(a: Value, b: Value): boolean {
  const sa = set(a);
  for (const x of set(b)) if (member(sa, x)) return true;
  return false;
}

export function isEmpty(s: Value): boolean {
  return set(s).length === 0;
}

function entity(v: Value): Uid {
  if (!(v instanceof Uid)) throw typeError('entity', v);
  return v;
}

/** `a in b`: b an entity or a set of entities; an entity is in itself and in its ancestors. */
export function isIn(a: Value, b: Value, es: Entities): boolean {
  const uid = entity(a);
  if (b instanceof Uid) return uid.key === b.key || es.ancestors(uid.key).has(b.key);
  if (!Array.isArray(b)) throw typeError('entity or set of entities', b);
  const targets = (b as readonly Value[]).map(entity);
  for (const t of targets) if (t.key === uid.key) return true;
  if (targets.length === 0) return false;
  const ancestors = es.ancestors(uid.key);
  for (const t of targets) if (ancestors.has(t.key)) return true;
  return false;
}

export function isType(a: Value, type: string): boolean {
  return entity(a).type === type;
}

/** `e.attr`: an error when the entity does not exist or lacks the attribute. */
export function get(v: Value, attr: string, es: Entities): Value {
  let attrs: Rec;
  if (v instanceof Uid) {
    const e = es.get(v.key);
    if (e === undefined) throw new CedarError(`entity ${v.type}::${JSON.stringify(v.id)} does not exist`);
    attrs = e.attrs;
  } else if (isRecord(v)) {
    attrs = v;
  } else {
    throw typeError('entity or record', v);
  }
  const out = attrs[attr];
  if (out === undefined) throw new CedarError(`attribute ${JSON.stringify(attr)} does not exist`);
  return out;
}

/** `e has attr`: false for an entity that does not exist. */
export function has(v: Value, attr: string, es: Entities): boolean {
  if (v instanceof Uid) {
    const e = es.get(v.key);
    return e !== undefined && e.attrs[attr] !== undefined;
  }
  if (isRecord(v)) return v[attr] !== undefined;
  throw typeError('entity or record', v);
}

function tagName(t: Value): string {
  if (typeof t !== 'string') throw typeError('string', t);
  return t;
}

export function hasTag(v: Value, t: Value, es: Entities): boolean {
  const uid = entity(v);
  const name = tagName(t);
  const tags = es.get(uid.key)?.tags;
  return tags !== undefined && tags !== null && tags[name] !== undefined;
}

export function getTag(v: Value, t: Value, es: Entities): Value {
  const uid = entity(v);
  const name = tagName(t);
  const e = es.get(uid.key);
  if (e === undefined) throw new CedarError(`entity ${uid.type}::${JSON.stringify(uid.id)} does not exist`);
  const out = e.tags?.[name];
  if (out === undefined) throw new CedarError(`tag ${JSON.stringify(name)} does not exist`);
  return out;
}

export function like(v: Value, pattern: RegExp): boolean {
  if (typeof v !== 'string') throw typeError('string', v);
  return pattern.test(v);
}

export function record(entries: readonly (readonly [string, Value])[]): Rec {
  const out = Object.create(null) as Record<string, Value>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}

export function gt(a: Value, b: Value): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a > b;
  const [x, y] = ordered(a, b);
  return x > y;
}

export function ge(a: Value, b: Value): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a >= b;
  const [x, y] = ordered(a, b);
  return x >= y;
}

/** `e has a.b.c`: `e has a && e.a has b && e.a.b has c`. */
export function hasPath(v: Value, path: readonly string[], es: Entities): boolean {
  let current = v;
  const last = path.length - 1;
  for (let i = 0; i <= last; i++) {
    const name = path[i] as string;
    if (!has(current, name, es)) return false;
    if (i < last) current = get(current, name, es);
  }
  return true;
}

/** An extension function or method (extensions.ts); its errors are evaluation errors. */
export function ext(name: string, args: readonly Value[]): Value {
  try {
    return callExtension(name, args) as Value;
  } catch (err) {
    // Only the extensions' own errors are Cedar errors. Anything else is a fault here, never
    // "this policy errored" (a skipped forbid could allow): it goes up, and cedar-wasm decides.
    if (err instanceof CedarExtError) throw new CedarError(err.message);
    throw err;
  }
}
