// Cedar evaluation. The policy set and schema are preparsed into cedar-wasm once per version
// (FACTS: isAuthorized would reparse them on every call); each request crosses into wasm once.

import * as cedar from './cedar.js';
import type { Context, EntityJson, EntityUidJson } from './cedar.js';
import { deny, ok, type Outcome } from '../core/reasons.js';
import type { CedarRequest, EntityUid } from '../core/cedar-request.js';
import type { EvaluationPath } from '../core/decision.js';
import type { PolicyVersion } from './loader.js';
import { actionHierarchyInEntities, requestEntitiesSuffice } from './analysis.js';
import { sliceByAction } from './slicing.js';
import { LazyPolicySet, ScopedSlices, uidKey } from './scope-index.js';
import { reachable } from './hierarchy.js';
import type { SchemalessPlan } from './schemaless.js';
import { HistoryDependence } from './history-reads.js';
import { ReadNames } from '../json/strict.js';
import { CompiledPolicySet, policyFunction, type CompiledAnswer, type CompiledPolicy } from './compiled/authorize.js';
import { readRequest, type CompiledInput } from './compiled/inputs.js';
import { CompiledScopeIndex } from './compiled/scope.js';
import { prepareBodyBlame, prepareProjection, type ActionProjection, type BodyBlame, type Projection } from './projection-plan.js';

/** Action slices smaller than this are evaluated whole: the index would cost more than it saves. */
const SCOPE_SLICING_MIN_POLICIES = 16;
/** Preparsed principal/resource slices kept per action slice (least recently used go first). */
const SCOPED_SLICE_CACHE = 1024;

function preparseStatic(id: string, policies: Record<string, string>): boolean {
  return cedar.preparsePolicySet(id, { staticPolicies: policies }).type === 'success';
}

/**
 * The scope index of each large slice (compiled/scope.ts), built once per distinct slice and
 * shared by the compiled path and the cedar-wasm slices (ScopedSlices): both ask for the same
 * policy ids. Null for a slice whose scopes are not all understood.
 */
function scopeIndexes(version: PolicyVersion): (ids: readonly string[]) => CompiledScopeIndex | null {
  const facts = new Map(version.policies.map((p) => [p.id, p.facts]));
  const built = new Map<string, CompiledScopeIndex | null>();
  return (ids) => {
    const key = ids.join('\n');
    let index = built.get(key);
    if (index === undefined) {
      // Each policy's principal and resource scope, as cedar-wasm's JSON form gives them (facts.ts).
      index = CompiledScopeIndex.build(ids.map((i) => ({ principal: facts.get(i)?.principal, resource: facts.get(i)?.resource })));
      built.set(key, index);
    }
    return index;
  };
}


export interface Evaluation {
  readonly decision: 'allow' | 'deny';
  /** Policies that determined the decision (the permits for an allow, the forbids for a deny). */
  readonly determining: readonly string[];
  /** Policies skipped because they failed to evaluate (Cedar treats them as not applying). */
  readonly errors: readonly string[];
  /** Where it was evaluated. */
  readonly path: EvaluationPath;
}

/** Where evaluations run: inline (below) or the worker pool (pool.ts). */
export interface Evaluator {
  /** `deadline`: epoch ms after which the caller has given up (the pool answers `overloaded` then). */
  evaluate(engine: PolicyEngine, request: CedarRequest, deadline: number): Outcome<Evaluation> | Promise<Outcome<Evaluation>>;
}

/** Compiled when the request is on the compiled path, else cedar-wasm on this thread. */
export const INLINE_EVALUATOR: Evaluator = Object.freeze({
  evaluate: (engine: PolicyEngine, request: CedarRequest): Outcome<Evaluation> => engine.evaluateCompiled(request) ?? engine.evaluate(request),
});

/**
 * Evaluations per path in this thread since start: compiled (compiled/), cedar-wasm on this
 * thread. Pool workers count theirs in the pool's stats (pool.ts).
 */
export const EVALUATION_PATHS = { compiled: 0, wasmInline: 0 };

/** An action slice compiled to JavaScript, with its scope index when large (scope-index.ts). */
interface CompiledSlice {
  readonly set: CompiledPolicySet;
  readonly index: CompiledScopeIndex | null;
}

const NO_PARENTS: readonly EntityUidJson[] = Object.freeze([]);
/** Workloads whose merged parents are kept; past it the map starts over (a bound, not an LRU). */
const MERGED_PARENTS_KEPT = 4096;
const NOT_PROJECTED = Object.freeze({ projection: null, schemaless: null });

/** Cedar's text for a context that does not fit the schema: the request's fault, not ours. */
const CONTEXT_SCHEMA_ERROR = /^while parsing context/;
const CONTEXT_INVALID = /^context `.*` is not valid for `/s;

export class PolicyEngine {
  /** Static entities by "Type::id", for merging parents into per-request entities. */
  private readonly staticByKey: ReadonlyMap<string, EntityJson>;
  private readonly staticEntities: readonly EntityJson[];
  private readonly annotations: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Every ancestor (transitively) of each static entity, by "Type::id". */
  private readonly ancestors: ReadonlyMap<string, readonly EntityUidJson[]>;
  /** Parents merged with pattern groups, per entity (parentsByKey); at most MERGED_PARENTS_KEPT. */
  private readonly mergedParents = new Map<string, { readonly extra: readonly EntityUid[]; readonly parents: readonly EntityUidJson[] }>();
  /**
   * True when the policy analysis (analysis.ts) shows no policy reads an entity beyond the
   * request's own: requests then carry only their own entities, with ancestors flattened in.
   */
  readonly requestEntitiesOnly: boolean;
  /**
   * The choices prepare made from what only this thread may hold (the static entities): a pool
   * worker, which is sent no entities, prepares with these so that it decides exactly as here.
   */
  readonly derived: { readonly requestEntitiesOnly: boolean; readonly slicing: boolean };
  /** The set per action id (slicing.ts): its slice, or the whole set when every policy applies. */
  private readonly slices: ReadonlyMap<string, LazyPolicySet>;
  /** Context projection per action (projection.ts); actions not listed send the whole context. */
  private readonly projections: ReadonlyMap<string, ActionProjection>;
  private readonly projectedSchemaName: string | undefined;

  private constructor(
    readonly version: PolicyVersion,
    /** The preparse slot (ids in cedar-wasm are per slot). */
    readonly slot: string,
    /** The actions given at prepare (routes' actions, for slicing without a schema). */
    readonly actions: readonly string[],
    /** The whole set (preparsed on first use when slicing). */
    private readonly whole: LazyPolicySet,
    /** For actions no slice covers: those with no action constraint when sliced, else the whole set. */
    private readonly other: LazyPolicySet,
    private readonly schemaName: string | undefined,
    requestEntitiesOnly: boolean,
    slicing: boolean,
    slices: ReadonlyMap<string, LazyPolicySet>,
    private readonly scoped: ReadonlyMap<string, ScopedSlices>,
    projection: { readonly byAction: ReadonlyMap<string, ActionProjection>; readonly schemaName: string | undefined },
    private readonly bodyBlame: BodyBlame,
    /** Which actions decide on what recorded calls change (history-reads.ts). */
    readonly history: HistoryDependence,
    /** Per action, its slice compiled (null: some policy of it stays on cedar-wasm); `compiledOther` for other actions. */
    private readonly compiledSlices: ReadonlyMap<string, CompiledSlice | null>,
    private readonly compiledOther: CompiledSlice | null,
  ) {
    this.slices = slices;
    this.projections = projection.byAction;
    this.projectedSchemaName = projection.schemaName;
    this.staticEntities = version.entities;
    this.staticByKey = new Map(version.entities.map((e) => [uidKey(e.uid), e]));
    this.annotations = new Map(version.policies.map((p) => [p.id, p.annotations]));
    this.ancestors = transitiveAncestors(version.entities);
    this.requestEntitiesOnly = requestEntitiesOnly;
    this.derived = Object.freeze({ requestEntitiesOnly, slicing });
  }

  /**
   * Parents for a request's own entity: its static parents and `extra` (pattern groups). When
   * requests carry only their own entities, every ancestor is listed, so `in` needs no other entity.
   */
  parentsFor(uid: EntityUid, extra: readonly EntityUid[]): readonly EntityUidJson[] {
    return this.parentsByKey(`${uid.type}::${uid.id}`, extra);
  }

  /** The static entity and the parents of a request's own entity (parentsFor), from one key. */
  ownEntity(uid: EntityUid, extra: readonly EntityUid[]): { readonly known: EntityJson | undefined; readonly parents: readonly EntityUidJson[] } {
    const key = `${uid.type}::${uid.id}`;
    return { known: this.staticByKey.get(key), parents: this.parentsByKey(key, extra) };
  }

  private parentsByKey(key: string, extra: readonly EntityUid[]): readonly EntityUidJson[] {
    if (!this.requestEntitiesOnly) {
      const direct = this.staticByKey.get(key)?.parents ?? [];
      return extra.length === 0 ? direct : [...direct, ...extra];
    }
    // Flattened at load; only pattern groups (extra) are merged per request, and the merged list
    // is kept per entity while its pattern groups are the same objects (WorkloadGroups holds one
    // frozen uid per group): requests of one workload then share one frozen parents array.
    const flat = this.ancestors.get(key) ?? NO_PARENTS;
    if (extra.length === 0) return flat;
    const kept = this.mergedParents.get(key);
    if (kept !== undefined && kept.extra.length === extra.length && kept.extra.every((u, i) => u === extra[i])) return kept.parents;
    const all: EntityUidJson[] = [...flat];
    const add = (u: EntityUidJson): void => {
      // A request's parents are a handful: a scan costs less than keying each one.
      const { type, id } = '__entity' in u ? u.__entity : u;
      for (const a of all) {
        const b = '__entity' in a ? a.__entity : a;
        if (b.type === type && b.id === id) return;
      }
      all.push(u);
    };
    for (const p of extra) {
      add(p);
      for (const a of this.ancestors.get(uidKey(p)) ?? []) add(a);
    }
    if (extra.every((u) => Object.isFrozen(u))) {
      if (this.mergedParents.size >= MERGED_PARENTS_KEPT) this.mergedParents.clear();
      this.mergedParents.set(key, { extra: [...extra], parents: Object.freeze(all) });
    }
    return all;
  }

  /** A policy's annotation, e.g. annotation("some-policy", "approval"). */
  annotation(policyId: string, key: string): string | undefined {
    return this.annotations.get(policyId)?.[key];
  }

  /**
   * Preparses a version under `slot`. Slots let a reload prepare the new version beside the
   * live one and swap; cedar-wasm replaces a preparsed id when it is reused, so alternating two
   * slots keeps memory flat across reloads.
   */
  static prepare(version: PolicyVersion, slot: string, options: { requestEntitiesOnly?: boolean; slicing?: boolean; projection?: boolean; schemaless?: boolean; actions?: readonly string[]; compiled?: boolean } = {}): Outcome<PolicyEngine> {
    const policySetId = `policies-${slot}`;
    const allPolicies = (): Record<string, string> => Object.fromEntries(version.policies.map((p) => [p.id, p.text]));
    const whole = new LazyPolicySet(policySetId, allPolicies, preparseStatic);
    // Without a schema, action groups can only come from Action entities in the entity data,
    // which neither slicing nor request-only entities follow (analysis.ts): both step aside.
    const actionGroupsInEntities = actionHierarchyInEntities(version.schemaText, version.entities);
    const slicing = options.slicing ?? !actionGroupsInEntities;
    // Without slicing every request needs the whole set: prepare it now, and refuse a set
    // cedar-wasm will not take. With slicing it is prepared when a request first needs it.
    if (!slicing) {
      const set = cedar.preparsePolicySet(policySetId, { staticPolicies: allPolicies() });
      if (set.type === 'failure') return deny('internal_error', set.errors.map((e) => e.message).join('; '));
    }
    let schemaName: string | undefined;
    if (version.schemaText !== null) {
      schemaName = `schema-${slot}`;
      const schema = cedar.preparseSchema(schemaName, version.schemaText);
      if (schema.type === 'failure') return deny('internal_error', schema.errors.map((e) => e.message).join('; '));
    }
    const lean = options.requestEntitiesOnly ?? (!actionGroupsInEntities && requestEntitiesSuffice(version.policies, version.schemaText));
    const slices = new Map<string, LazyPolicySet>();
    const scopedSlices = new Map<string, ScopedSlices>();
    let byAction: Map<string, string[]> | null = null;
    let otherIds: readonly string[] | null = null;
    let other = whole;
    const compiledIds = new Set(version.policies.filter((p) => 'shape' in p.compiled).map((p) => p.id));
    const indexFor = scopeIndexes(version);
    if (slicing) {
      const text = new Map(version.policies.map((p) => [p.id, p.text]));
      // One set per distinct slice (actions with the same policies share it), the whole set
      // for a slice of every policy.
      const sets = new Map<string, LazyPolicySet>();
      const setFor = (ids: readonly string[]): LazyPolicySet => {
        if (ids.length === version.policies.length) return whole;
        const key = ids.join('\n');
        let set = sets.get(key);
        if (set === undefined) sets.set(key, (set = new LazyPolicySet(`${policySetId}-slice-${sets.size}`, () => Object.fromEntries(ids.map((i) => [i, text.get(i) as string])), preparseStatic)));
        return set;
      };
      try {
        const sliced = sliceByAction(version.policies, version.schemaText, options.actions ?? []);
        if (sliced !== null) {
          byAction = sliced.byAction;
          // Any other action (unknown at load) needs only the policies with no action constraint.
          other = setFor(sliced.other);
          otherIds = sliced.other;
        }
      } catch {
        byAction = null;
      }
      const scopedBySet = new Map<LazyPolicySet, ScopedSlices | null>();
      for (const [action, ids] of byAction ?? []) {
        const set = setFor(ids);
        // Within a large action slice, slice again by principal and resource (scope-index.ts);
        // the action slice itself is then preparsed only if a request needs all of it.
        let scoped = scopedBySet.get(set);
        if (scoped === undefined && lean && ids.length >= SCOPE_SLICING_MIN_POLICIES) {
          const index = indexFor(ids);
          scoped = index === null ? null : new ScopedSlices(index, ids, set, text, `${set.setId}-scoped`, SCOPED_SLICE_CACHE, preparseStatic);
          scopedBySet.set(set, scoped);
        }
        if (scoped !== undefined && scoped !== null) {
          scopedSlices.set(action, scoped);
          continue;
        }
        // Small slices are preparsed now (a set cedar-wasm refuses refuses the version); the
        // whole set stays lazy, and so does a slice whose every policy compiled: cedar-wasm
        // sees only its requests that are not proven, and each preparsed copy costs memory.
        if (set !== whole && !(options.compiled !== false && ids.every((id) => compiledIds.has(id)))) {
          set.id();
          if (!set.preparsed) return deny('internal_error', `cannot preparse the slice for ${action}`);
        }
        slices.set(action, set);
      }
    }
    let projection: Projection = { byAction: new Map(), schemaName: undefined };
    if (options.projection !== false) {
      projection = prepareProjection(version, `${policySetId}-projected`, byAction ?? new Map(), options.actions ?? [], lean && options.schemaless !== false);
    }
    if (byAction === null) whole.id(); // not sliced: every request needs it
    const compiled = options.compiled === false ? { byAction: new Map<string, CompiledSlice | null>(), other: null } : compileSlices(version, byAction, otherIds, indexFor);
    return ok(new PolicyEngine(version, slot, options.actions ?? [], whole, other, schemaName, lean, slicing, slices, scopedSlices, projection, prepareBodyBlame(version), new HistoryDependence(version, byAction, otherIds), compiled.byAction, compiled.other));
  }

  /** Whether this request would be evaluated without the schema (tests, benchmarks). */
  schemaless(request: CedarRequest): boolean {
    return this.pathFor(request).schemaless !== null;
  }

  /** Whether this request would be sent with its context projected (tests, benchmarks). */
  projects(request: CedarRequest): boolean {
    return this.pathFor(request).projection !== null;
  }

  /**
   * How a request is sent: its context projected when it provably conforms (else whole, against
   * the whole schema, for Cedar's own answer), and without the schema when the rest of the
   * request is proven too (schemaless.ts).
   */
  private pathFor(request: CedarRequest): { projection: ActionProjection | null; schemaless: SchemalessPlan | null } {
    const projection = this.projections.get(request.action.id);
    if (projection === undefined || !projection.conforms(request.context)) return NOT_PROJECTED;
    const plan = projection.schemaless;
    const schemaless = plan?.accepts(request.principal.type, request.resource.type, request.entities) ? plan : null;
    return { projection, schemaless };
  }

  /** How many actions send a projected context (when it conforms). */
  get projectedActions(): number {
    return this.projections.size;
  }

  /** The preparsed set a request is evaluated against: its action's slice, sliced again by scope when large. */
  policySetFor(request: CedarRequest): string {
    const scoped = this.scoped.get(request.action.id);
    if (scoped !== undefined) return scoped.setFor(request);
    return (this.slices.get(request.action.id) ?? this.other).id();
  }

  /** How many actions slice again by principal and resource. */
  get scopeSlicedActions(): number {
    return this.scoped.size;
  }

  /** How many actions are evaluated against a slice rather than the whole set. */
  get slicedActions(): number {
    let n = 0;
    for (const set of this.slices.values()) if (set !== this.whole) n++;
    return n;
  }

  private readNamesCache: ReadNames | null = null;

  /** Every attribute and tag name some policy reads or tests (facts.ts), for the JSON alias check (json/strict.ts). */
  readNames(): ReadNames {
    if (this.readNamesCache === null) {
      this.readNamesCache = new ReadNames(this.version.policies.flatMap((p) => [...(p.facts?.attributes ?? []), ...(p.facts?.tags ?? [])]));
    }
    return this.readNamesCache;
  }

  /** Static entity for a uid, so the mapper can merge its parents and attributes. */
  staticEntity(uid: EntityUid): EntityJson | undefined {
    return this.staticByKey.get(`${uid.type}::${uid.id}`);
  }

  /**
   * The entity list for a request: every static entity except those the request replaces
   * (the principal and the resource are built per request), then the request's own.
   */
  entitiesFor(own: readonly EntityJson[]): EntityJson[] {
    if (this.requestEntitiesOnly || this.staticEntities.length === 0) return own as EntityJson[];
    let replaced = 0;
    for (const e of own) if (this.staticByKey.has(uidKey(e.uid))) replaced++;
    if (replaced === 0) return [...this.staticEntities, ...own];
    const skip = new Set(own.map((e) => uidKey(e.uid)));
    return [...this.staticEntities.filter((e) => !skip.has(uidKey(e.uid))), ...own];
  }

  /** How many policies are compiled, of how many. */
  get compiledPolicies(): { readonly compiled: number; readonly total: number } {
    return { compiled: this.version.policies.filter((p) => 'shape' in p.compiled).length, total: this.version.policies.length };
  }

  /**
   * Cedar's answer from the compiled policies, or null when the request is not on the compiled
   * path: its slice holds a policy that is not compiled, or the request is not proven to need no
   * schema (the same proofs as schema-less evaluation: the compiled evaluator is given exactly
   * what cedar-wasm would be given without the schema), or some value is outside what the
   * compiled evaluator reads (compiled/inputs.ts). Null sends the request to cedar-wasm.
   */
  evaluateCompiled(request: CedarRequest): Outcome<Evaluation> | null {
    if (!this.requestEntitiesOnly) return null;
    const slice = this.compiledSlices.has(request.action.id) ? this.compiledSlices.get(request.action.id) : this.compiledOther;
    if (slice == null) return null;
    let input: CompiledInput | null;
    if (this.schemaName !== undefined) {
      // One pass: the schema-less proof and the conversion (compiled/readers.ts).
      const reader = this.projections.get(request.action.id)?.compiledReader;
      if (reader === undefined) return null;
      input = reader.read(request.principal, request.resource, request.context, request.entities as EntityJson[]);
    } else {
      const projection = this.projections.get(request.action.id);
      const context = projection?.conforms(request.context) ? projection.project(request.context) : request.context;
      input = readRequest({ principal: request.principal, action: request.action, resource: request.resource, context, entities: request.entities });
    }
    if (input === null) return null;
    let answer: CompiledAnswer;
    try {
      answer = slice.set.authorize(input, slice.index?.applicable(input.principal, input.resource, input.entities));
    } catch {
      return null; // not a Cedar error (a stack overflow on a deep value): Cedar's own answer
    }
    EVALUATION_PATHS.compiled++;
    return ok({ decision: answer.decision, determining: answer.determining, errors: answer.errors.map((e) => `${e.policyId}: ${e.message}`), path: 'compiled' });
  }

  evaluate(request: CedarRequest): Outcome<Evaluation> {
    EVALUATION_PATHS.wasmInline++;
    let answer: cedar.AuthorizationAnswer;
    // The projected context and schema only when the whole context provably conforms;
    // otherwise the whole context against the whole schema, for Cedar's own answer.
    const { projection, schemaless } = this.pathFor(request);
    const schemaName = schemaless !== null ? undefined : projection !== null ? this.projectedSchemaName : this.schemaName;
    try {
      answer = cedar.statefulIsAuthorized({
        principal: request.principal,
        action: request.action,
        resource: request.resource,
        context: projection !== null ? (projection.project(request.context) as Context) : request.context,
        entities: schemaless !== null ? schemaless.entities(request.entities) : (request.entities as EntityJson[]),
        preparsedPolicySetId: this.policySetFor(request),
        ...(schemaName === undefined ? {} : { preparsedSchemaName: schemaName, validateRequest: true }),
      });
    } catch (err) {
      return deny('internal_error', `policy evaluation failed: ${(err as Error).message}`);
    }
    if (answer.type === 'failure') {
      const message = answer.errors.map((e) => e.message).join('; ');
      if (answer.errors.length > 0 && answer.errors.every((e) => CONTEXT_SCHEMA_ERROR.test(e.message))) {
        return deny('bad_request', `request does not match the schema: ${message}`);
      }
      // A body field of the wrong type is the caller's mistake, not Mandate's.
      if (CONTEXT_INVALID.test(message) && this.bodyBlame.get(request.action.id)?.(request.context as Record<string, unknown>) === true) {
        return deny('bad_request', `the request body does not match the schema of ${request.action.type}::"${request.action.id}"`);
      }
      return deny('internal_error', `policy evaluation failed: ${message}`);
    }
    const { decision, diagnostics } = answer.response;
    return ok({
      decision,
      determining: diagnostics.reason,
      errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
      path: 'wasm-inline',
    });
  }
}


/**
 * The compiled form of each action slice (and of the rest), sharing one function per policy.
 * A slice with any policy that did not compile is null: it is evaluated by cedar-wasm whole.
 * Large slices get a scope index (compiled/scope.ts).
 */
function compileSlices(
  version: PolicyVersion,
  byAction: ReadonlyMap<string, readonly string[]> | null,
  otherIds: readonly string[] | null,
  indexFor: (ids: readonly string[]) => CompiledScopeIndex | null,
): { byAction: Map<string, CompiledSlice | null>; other: CompiledSlice | null } {
  const functions = new Map<string, CompiledPolicy>();
  for (const p of version.policies) {
    if (!('shape' in p.compiled) || p.facts === null) continue;
    functions.set(p.id, { id: p.id, effect: p.compiled.shape.effect, fn: policyFunction(p.compiled.shape, p.compiled.constants) });
  }
  const cache = new Map<string, CompiledSlice | null>();
  const sliceFor = (ids: readonly string[]): CompiledSlice | null => {
    const key = ids.join('\n');
    if (cache.has(key)) return cache.get(key) as CompiledSlice | null;
    let slice: CompiledSlice | null = null;
    const policies = ids.map((id) => functions.get(id));
    if (policies.every((p) => p !== undefined)) {
      const index = ids.length >= SCOPE_SLICING_MIN_POLICIES ? indexFor(ids) : null;
      slice = { set: new CompiledPolicySet(policies as CompiledPolicy[]), index };
    }
    cache.set(key, slice);
    return slice;
  };
  const all = version.policies.map((p) => p.id);
  const out = new Map<string, CompiledSlice | null>();
  for (const [action, ids] of byAction ?? []) out.set(action, sliceFor(ids));
  return { byAction: out, other: sliceFor(byAction === null ? all : (otherIds ?? all)) };
}

/** Each static entity's ancestors, transitively (cycles are cut). */
function transitiveAncestors(entities: readonly EntityJson[]): Map<string, readonly EntityUidJson[]> {
  const parents = new Map(entities.map((e) => [uidKey(e.uid), e.parents]));
  // One frozen {type, id} per parent: requests share these arrays as their entities' parents,
  // and the compiled readers keep what they read from a frozen array (readers.ts).
  const uids = new Map(
    entities.flatMap((e) => e.parents).map((p) => {
      const u = '__entity' in p ? p.__entity : p;
      return [uidKey(p), Object.freeze({ type: u.type, id: u.id })];
    }),
  );
  const keysOf = (k: string): string[] | undefined => parents.get(k)?.map(uidKey);
  return new Map(entities.map((e) => [uidKey(e.uid), Object.freeze([...reachable(keysOf(uidKey(e.uid)) ?? [], keysOf)].map((k) => uids.get(k) as EntityUidJson))]));
}
