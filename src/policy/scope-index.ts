// Slicing by principal and resource, within an action's slice (slicing.ts).
//
// Cedar evaluates a policy's scope before its conditions (principal, action and resource
// constraints are the first operands of one short-circuit `&&`), so a policy whose principal or
// resource scope cannot match the request is neither satisfied nor an error: leaving it out
// changes no decision, no determining policy and no error. At load each policy's principal and
// resource scope is indexed (compiled/scope.ts, the index the compiled path uses too); per
// request the index gives the policies whose both scopes can match, and the engine evaluates a
// set preparsed for exactly those (engine.ts keeps them in a bounded cache).
//
// `in` is reflexive and follows the entity hierarchy the request carries. The engine uses this
// only when a request carries its own entities alone (analysis.ts), with ancestors flattened in,
// so the hierarchy is a walk over two or three entities, done exactly as Cedar computes it.

import type { EntityJson } from './cedar.js';
import type { CompiledScopeIndex } from './compiled/scope.js';
import { readHierarchy } from './compiled/inputs.js';
import { Uid } from './compiled/values.js';

type UidLike = { type: string; id: string } | { __entity: { type: string; id: string } };

export function uidKey(uid: UidLike): string {
  const u = '__entity' in uid ? uid.__entity : uid;
  return `${u.type}::${u.id}`;
}

export interface ScopedRequest {
  readonly principal: { readonly type: string; readonly id: string };
  readonly resource: { readonly type: string; readonly id: string };
  readonly entities: readonly EntityJson[];
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
    /** The scope index of the action slice (compiled/scope.ts, the one the compiled path uses). */
    private readonly index: CompiledScopeIndex,
    /** The action slice's policy ids, by the index's numbers. */
    private readonly ids: readonly string[],
    /** The action slice: used when a request needs all of it. */
    private readonly actionSet: LazyPolicySet,
    private readonly texts: ReadonlyMap<string, string>,
    private readonly idPrefix: string,
    private readonly capacity: number,
    private readonly preparse: (id: string, policies: Record<string, string>) => boolean,
  ) {}

  /** The preparsed set to evaluate this request against; preparsed on first use, then cached. */
  setFor(request: ScopedRequest): string {
    // The request's hierarchy as Cedar reads it; one the reader does not take gets the whole slice.
    const hierarchy = readHierarchy(request.entities);
    if (hierarchy === null) return this.actionSet.id();
    const applicable = this.index.applicable(new Uid(request.principal.type, request.principal.id), new Uid(request.resource.type, request.resource.id), hierarchy);
    if (applicable.length === this.ids.length) return this.actionSet.id();
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
      const pid = this.ids[n] as string;
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
