// Slicing by principal and resource, within an action's slice (slicing.ts).
//
// Cedar evaluates a policy's scope before its conditions (principal, action and resource
// constraints are the first operands of one short-circuit `&&`), so a policy whose principal or
// resource scope cannot match the request is neither satisfied nor an error: leaving it out
// changes no decision, no determining policy and no error. At load each policy's principal and
// resource scope is read from cedar-wasm's JSON form and indexed (==, in, is, is..in, none); per
// request the index gives the policies whose both scopes can match, and the engine evaluates a
// set preparsed for exactly those (engine.ts keeps them in a bounded cache).
//
// `in` is reflexive and follows the entity hierarchy the request carries. The engine uses this
// only when a request carries its own entities alone (analysis.ts), with ancestors flattened in,
// so the hierarchy is a walk over two or three entities, done here exactly as Cedar computes it.

import type { EntityJson } from './cedar.js';
import { reachable } from './hierarchy.js';

export type Scope = { readonly op: 'All' } | { readonly op: '=='; readonly key: string } | { readonly op: 'in'; readonly key: string } | { readonly op: 'is'; readonly type: string; readonly inKey: string | null };

type UidLike = { type: string; id: string } | { __entity: { type: string; id: string } };

export function uidKey(uid: UidLike): string {
  const u = '__entity' in uid ? uid.__entity : uid;
  return `${u.type}::${u.id}`;
}

/** A principal or resource scope from cedar-wasm's policy JSON; null when not understood (slots). */
export function readScope(json: unknown): Scope | null {
  const c = json as { op?: string; entity?: UidLike; entity_type?: string; in?: { entity?: UidLike } };
  if (c?.op === 'All') return { op: 'All' };
  if ((c?.op === '==' || c?.op === 'in') && c.entity !== undefined && typeof c.entity === 'object') return { op: c.op, key: uidKey(c.entity) };
  if (c?.op === 'is' && typeof c.entity_type === 'string') {
    if (c.in === undefined) return { op: 'is', type: c.entity_type, inKey: null };
    if (c.in.entity !== undefined) return { op: 'is', type: c.entity_type, inKey: uidKey(c.in.entity) };
  }
  return null;
}

/** One side (principal or resource) of the index: policy numbers by the constraint they carry. */
class SideIndex {
  private readonly any: number[] = [];
  private readonly eq = new Map<string, number[]>();
  private readonly within = new Map<string, number[]>();
  private readonly byType = new Map<string, { readonly n: number; readonly inKey: string | null }[]>();

  add(n: number, scope: Scope): void {
    if (scope.op === 'All') this.any.push(n);
    else if (scope.op === '==') push(this.eq, scope.key, n);
    else if (scope.op === 'in') push(this.within, scope.key, n);
    else push(this.byType, scope.type, { n, inKey: scope.inKey });
  }

  /** Calls `hit` with each policy whose constraint can match an entity with this key, type and ancestors. */
  collect(key: string, type: string, ancestors: readonly string[], hit: (n: number) => void): void {
    for (const n of this.any) hit(n);
    for (const n of this.eq.get(key) ?? []) hit(n);
    for (const n of this.within.get(key) ?? []) hit(n);
    for (const a of ancestors) for (const n of this.within.get(a) ?? []) hit(n);
    for (const c of this.byType.get(type) ?? []) if (c.inKey === null || c.inKey === key || ancestors.includes(c.inKey)) hit(c.n);
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

export interface ScopedRequest {
  readonly principal: { readonly type: string; readonly id: string };
  readonly resource: { readonly type: string; readonly id: string };
  readonly entities: readonly EntityJson[];
}

export class ScopeIndex {
  private readonly principals = new SideIndex();
  private readonly resources = new SideIndex();
  private readonly stamp: Int32Array;
  private generation = 0;

  /** `scopes[i]` belongs to policy `ids[i]` (readScope); null when any scope is not understood. */
  static build(ids: readonly string[], scopes: readonly { principal: Scope | null; resource: Scope | null }[]): ScopeIndex | null {
    const index = new ScopeIndex(ids);
    for (const [n, s] of scopes.entries()) {
      if (s.principal === null || s.resource === null) return null;
      index.principals.add(n, s.principal);
      index.resources.add(n, s.resource);
    }
    return index;
  }

  private constructor(readonly ids: readonly string[]) {
    this.stamp = new Int32Array(ids.length);
  }

  /** Numbers (ascending) of the policies whose principal and resource scopes can both match. */
  applicable(request: ScopedRequest): number[] {
    const gen = ++this.generation;
    const stamp = this.stamp;
    const pKey = `${request.principal.type}::${request.principal.id}`;
    this.principals.collect(pKey, request.principal.type, ancestorsOf(pKey, request.entities), (n) => {
      stamp[n] = gen;
    });
    const out: number[] = [];
    const rKey = `${request.resource.type}::${request.resource.id}`;
    this.resources.collect(rKey, request.resource.type, ancestorsOf(rKey, request.entities), (n) => {
      if (stamp[n] === gen) {
        stamp[n] = -gen; // once, even if two constraints of the same policy matched
        out.push(n);
      }
    });
    return out.sort((a, b) => a - b);
  }
}

/** Every ancestor of an entity through the parents the request's entities give (Cedar's closure). */
function ancestorsOf(key: string, entities: readonly EntityJson[]): string[] {
  const parentsOf = (k: string): string[] | undefined => entities.find((e) => uidKey(e.uid as UidLike) === k)?.parents.map((p) => uidKey(p as UidLike));
  return [...reachable(parentsOf(key) ?? [], parentsOf)];
}

/**
 * A policy set preparsed on first use: the whole set and large action slices are needed only by
 * requests no finer slice serves, and with 10,000 policies each preparsed copy costs every
 * thread (main and each pool worker) tens of megabytes of wasm memory.
 */
export class LazyPolicySet {
  private ready = false;

  constructor(
    readonly setId: string,
    private readonly policies: () => Record<string, string>,
    private readonly preparse: (id: string, policies: Record<string, string>) => boolean,
  ) {}

  /** The set's id, preparsed now if it was not. Cannot fail in practice: these policies parsed at
   * load. Were it to, the id stays unknown to cedar-wasm and evaluation answers internal_error. */
  id(): string {
    if (!this.ready) this.ready = this.preparse(this.setId, this.policies());
    return this.setId;
  }

  get preparsed(): boolean {
    return this.ready;
  }
}

/** Preparsed sets for the principal/resource slices of one action slice, in a bounded LRU. */
export class ScopedSlices {
  private readonly cache = new Map<string, string>();
  private nextId = 0;

  constructor(
    private readonly index: ScopeIndex,
    /** The action slice: used when a request needs all of it. */
    private readonly actionSet: LazyPolicySet,
    private readonly texts: ReadonlyMap<string, string>,
    private readonly idPrefix: string,
    private readonly capacity: number,
    private readonly preparse: (id: string, policies: Record<string, string>) => boolean,
  ) {}

  /** The preparsed set to evaluate this request against; preparsed on first use, then cached. */
  setFor(request: ScopedRequest): string {
    const applicable = this.index.applicable(request);
    if (applicable.length === this.index.ids.length) return this.actionSet.id();
    const key = applicable.join(',');
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, hit); // most recently used last
      return hit;
    }
    let id: string;
    if (this.cache.size >= this.capacity) {
      // Reuse the least recently used slot: cedar-wasm replaces a preparsed set stored under the same id.
      const [oldKey, oldId] = this.cache.entries().next().value as [string, string];
      this.cache.delete(oldKey);
      id = oldId;
    } else {
      id = `${this.idPrefix}-${this.nextId++}`;
    }
    const policies: Record<string, string> = {};
    for (const n of applicable) {
      const pid = this.index.ids[n] as string;
      policies[pid] = this.texts.get(pid) as string;
    }
    if (!this.preparse(id, policies)) return this.actionSet.id();
    this.cache.set(key, id);
    return id;
  }

  get cached(): number {
    return this.cache.size;
  }
}
