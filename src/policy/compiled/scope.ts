// Which policies of a large slice can apply to a request, from their principal and resource
// scopes: a policy whose scope cannot match is neither satisfied nor an error, so leaving it
// out changes nothing (scope-index.ts). Used by the compiled path, with the compiled request's
// keys and ancestors, and by the cedar-wasm slices (scope-index.ts ScopedSlices).

import { Uid, type Entities } from './values.js';

type UidJson = { type?: unknown; id?: unknown; __entity?: unknown };

function keyOf(u: unknown): string | null {
  const o = (u as UidJson)?.__entity !== undefined ? ((u as UidJson).__entity as UidJson) : (u as UidJson);
  return typeof o?.type === 'string' && typeof o.id === 'string' ? new Uid(o.type, o.id).key : null;
}

/** One policy's constraint on one side, for testing a candidate directly. */
type Constraint = { readonly op: 'All' } | { readonly op: '==' | 'in'; readonly key: string } | { readonly op: 'is'; readonly type: string; readonly inKey: string | null };

function matches(c: Constraint, uid: Uid, ancestors: ReadonlySet<string>): boolean {
  switch (c.op) {
    case 'All':
      return true;
    case '==':
      return uid.key === c.key;
    case 'in':
      return uid.key === c.key || ancestors.has(c.key);
    default:
      return uid.type === c.type && (c.inKey === null || uid.key === c.inKey || ancestors.has(c.inKey));
  }
}

/**
 * A scope's constraint, read once per scope object: a policy belongs to several action slices,
 * and each slice's index then holds the same constraint and key strings (at 10,000 policies the
 * per-slice copies were ~15 MB of heap).
 */
const constraints = new WeakMap<object, Constraint | null>();

function constraintOf(scope: unknown): Constraint | null {
  if (typeof scope !== 'object' || scope === null) return null;
  let c = constraints.get(scope);
  if (c === undefined) constraints.set(scope, (c = readConstraint(scope)));
  return c;
}

const ALL: Constraint = Object.freeze({ op: 'All' });

function readConstraint(scope: object): Constraint | null {
  const c = scope as { op?: unknown; entity?: unknown; entity_type?: unknown; in?: { entity?: unknown } };
  if (c.op === 'All') return ALL;
  if (c.op === '==' || c.op === 'in') {
    const key = keyOf(c.entity);
    return key === null ? null : Object.freeze({ op: c.op, key });
  }
  if (c.op === 'is' && typeof c.entity_type === 'string') {
    const inKey = c.in === undefined ? null : keyOf(c.in.entity);
    if (c.in !== undefined && inKey === null) return null;
    return Object.freeze({ op: 'is', type: c.entity_type, inKey });
  }
  return null;
}

/** Policy numbers by key: one number alone (most keys name one policy), else a list. */
type Postings = Map<string, number | number[]>;

function post(map: Postings, key: string, n: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, n);
  else if (typeof list === 'number') map.set(key, [list, n]);
  else list.push(n);
}

function postings(map: Postings, key: string): number {
  const list = map.get(key);
  return list === undefined ? 0 : typeof list === 'number' ? 1 : list.length;
}

class Side {
  readonly constraints: Constraint[] = [];
  readonly any: number[] = [];
  readonly eq: Postings = new Map();
  readonly within: Postings = new Map();
  readonly byType = new Map<string, { readonly n: number; readonly inKey: string | null }[]>();

  /** False when the scope is not understood (the index is then not built). */
  add(n: number, scope: unknown): boolean {
    const c = constraintOf(scope);
    if (c === null) return false;
    this.constraints[n] = c;
    switch (c.op) {
      case 'All':
        this.any.push(n);
        break;
      case '==':
        post(this.eq, c.key, n);
        break;
      case 'in':
        post(this.within, c.key, n);
        break;
      default: {
        const list = this.byType.get(c.type);
        if (list === undefined) this.byType.set(c.type, [{ n, inKey: c.inKey }]);
        else list.push({ n, inKey: c.inKey });
      }
    }
    return true;
  }

  /** An upper bound of the candidates `collect` would visit, from list sizes alone. */
  bound(uid: Uid, ancestors: ReadonlySet<string>): number {
    let n = this.any.length + postings(this.eq, uid.key) + (this.byType.get(uid.type)?.length ?? 0);
    if (this.within.size > 0) {
      n += postings(this.within, uid.key);
      for (const a of ancestors) n += postings(this.within, a);
    }
    return n;
  }

  /**
   * Appends to `out` each policy this side's constraints admit for `uid` whose constraint on the
   * other side admits `otherUid` too, once (`stamp`/`gen` mark the ones already seen).
   */
  collect(uid: Uid, ancestors: ReadonlySet<string>, other: Side, otherUid: Uid, otherAncestors: ReadonlySet<string>, stamp: Int32Array, gen: number, out: number[]): void {
    for (const n of this.any) take(n, other, otherUid, otherAncestors, stamp, gen, out);
    const eq = this.eq.get(uid.key);
    if (eq !== undefined) {
      if (typeof eq === 'number') take(eq, other, otherUid, otherAncestors, stamp, gen, out);
      else for (const n of eq) take(n, other, otherUid, otherAncestors, stamp, gen, out);
    }
    if (this.within.size > 0) {
      const own = this.within.get(uid.key);
      if (own !== undefined) {
        if (typeof own === 'number') take(own, other, otherUid, otherAncestors, stamp, gen, out);
        else for (const n of own) take(n, other, otherUid, otherAncestors, stamp, gen, out);
      }
      for (const a of ancestors) {
        const list = this.within.get(a);
        if (list === undefined) continue;
        if (typeof list === 'number') take(list, other, otherUid, otherAncestors, stamp, gen, out);
        else for (const n of list) take(n, other, otherUid, otherAncestors, stamp, gen, out);
      }
    }
    const typed = this.byType.get(uid.type);
    if (typed !== undefined) for (const c of typed) if (c.inKey === null || c.inKey === uid.key || ancestors.has(c.inKey)) take(c.n, other, otherUid, otherAncestors, stamp, gen, out);
  }
}

/** One candidate: kept when not seen yet in this call and its other side's constraint matches. */
function take(n: number, other: Side, otherUid: Uid, otherAncestors: ReadonlySet<string>, stamp: Int32Array, gen: number, out: number[]): void {
  if (stamp[n] === gen) return; // once, even if two constraints of one policy matched
  stamp[n] = gen;
  if (matches(other.constraints[n] as Constraint, otherUid, otherAncestors)) out.push(n);
}

export class CompiledScopeIndex {
  private readonly principals = new Side();
  private readonly resources = new Side();
  private readonly stamp: Int32Array;
  private generation = 0;

  private constructor(readonly size: number) {
    this.stamp = new Int32Array(size);
  }

  /** `scopes[i]`: policy i's principal and resource scope (cedar-wasm's JSON form); null when any is not understood. */
  static build(scopes: readonly { readonly principal: unknown; readonly resource: unknown }[]): CompiledScopeIndex | null {
    const index = new CompiledScopeIndex(scopes.length);
    for (const [n, s] of scopes.entries()) if (!index.principals.add(n, s.principal) || !index.resources.add(n, s.resource)) return null;
    return index;
  }

  /**
   * Numbers (ascending) of the policies whose principal and resource scopes can both match: the
   * candidates of the side with fewer, each tested against its other side's constraint.
   */
  applicable(principal: Uid, resource: Uid, es: Entities): number[] {
    let gen = ++this.generation;
    if (gen >= 0x3fffffff) {
      this.stamp.fill(0);
      this.generation = gen = 1;
    }
    const pAncestors = es.ancestors(principal.key);
    const rAncestors = es.ancestors(resource.key);
    const out: number[] = [];
    if (this.principals.bound(principal, pAncestors) <= this.resources.bound(resource, rAncestors)) {
      this.principals.collect(principal, pAncestors, this.resources, resource, rAncestors, this.stamp, gen, out);
    } else {
      this.resources.collect(resource, rAncestors, this.principals, principal, pAncestors, this.stamp, gen, out);
    }
    return ascending(out);
  }
}

/**
 * Sorts policy numbers in place. Most lists are a handful of candidates: insertion sort, since
 * Array.prototype.sort with a comparator allocates its work arrays on every call (~870 bytes a
 * Check in bench/allocations.ts for three numbers). Long lists (unscoped policies) by sort.
 */
export function ascending(out: number[]): number[] {
  if (out.length > 16) return out.sort((a, b) => a - b);
  for (let i = 1; i < out.length; i++) {
    const n = out[i] as number;
    let j = i - 1;
    while (j >= 0 && (out[j] as number) > n) {
      out[j + 1] = out[j] as number;
      j--;
    }
    out[j + 1] = n;
  }
  return out;
}
