// Cedar evaluation. The policy set and schema are preparsed into cedar-wasm once per version
// (FACTS: isAuthorized would reparse them on every call); each request crosses into wasm once.

import * as cedar from './cedar.js';
import type { Context, EntityJson, EntityUidJson } from './cedar.js';
import { deny, ok, type Outcome } from '../check/reasons.js';
import type { PolicyVersion } from './loader.js';
import { requestEntitiesSuffice } from './analysis.js';
import { sliceByAction } from './slicing.js';

export interface EntityUid {
  readonly type: string;
  readonly id: string;
}

export interface CedarRequest {
  readonly principal: EntityUid;
  readonly action: EntityUid;
  readonly resource: EntityUid;
  readonly context: Context;
  /** Built per request: the principal and the resource (with their static parents merged in). */
  readonly entities: readonly EntityJson[];
}

export interface Evaluation {
  readonly decision: 'allow' | 'deny';
  /** Policies that determined the decision (the permits for an allow, the forbids for a deny). */
  readonly determining: readonly string[];
  /** Policies skipped because they failed to evaluate (Cedar treats them as not applying). */
  readonly errors: readonly string[];
}

/** Cedar's text for a context that does not fit the schema: the request's fault, not ours. */
const CONTEXT_SCHEMA_ERROR = /^while parsing context/;

export class PolicyEngine {
  /** Static entities by "Type::id", for merging parents into per-request entities. */
  private readonly staticByKey: ReadonlyMap<string, EntityJson>;
  private readonly staticEntities: readonly EntityJson[];
  private readonly annotations: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Every ancestor (transitively) of each static entity, by "Type::id". */
  private readonly ancestors: ReadonlyMap<string, readonly EntityUidJson[]>;
  /**
   * True when the policy analysis (analysis.ts) shows no policy reads an entity beyond the
   * request's own: requests then carry only their own entities, with ancestors flattened in.
   */
  readonly requestEntitiesOnly: boolean;
  /** Preparsed policy set per action id (slicing.ts); actions not listed use the whole set. */
  private readonly slices: ReadonlyMap<string, string>;

  private constructor(
    readonly version: PolicyVersion,
    private readonly policySetId: string,
    private readonly schemaName: string | undefined,
    requestEntitiesOnly: boolean,
    slices: ReadonlyMap<string, string>,
  ) {
    this.slices = slices;
    this.staticEntities = version.entities;
    this.staticByKey = new Map(version.entities.map((e) => [uidKey(e.uid), e]));
    this.annotations = new Map(version.policies.map((p) => [p.id, p.annotations]));
    this.ancestors = transitiveAncestors(version.entities);
    this.requestEntitiesOnly = requestEntitiesOnly;
  }

  /**
   * Parents for a request's own entity: its static parents and `extra` (pattern groups). When
   * requests carry only their own entities, every ancestor is listed, so `in` needs no other entity.
   */
  parentsFor(uid: EntityUid, extra: readonly EntityUid[]): readonly EntityUidJson[] {
    const key = `${uid.type}::${uid.id}`;
    if (!this.requestEntitiesOnly) {
      const direct = this.staticByKey.get(key)?.parents ?? [];
      return extra.length === 0 ? direct : [...direct, ...extra];
    }
    // Flattened at load; only pattern groups (extra) are merged per request.
    const flat = this.ancestors.get(key) ?? [];
    if (extra.length === 0) return flat;
    const all = new Map<string, EntityUidJson>(flat.map((a) => [uidKey(a), a]));
    for (const p of extra) {
      all.set(uidKey(p), p);
      for (const a of this.ancestors.get(uidKey(p)) ?? []) all.set(uidKey(a), a);
    }
    return [...all.values()];
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
  static prepare(version: PolicyVersion, slot: string, options: { requestEntitiesOnly?: boolean; slicing?: boolean; actions?: readonly string[] } = {}): Outcome<PolicyEngine> {
    const policySetId = `policies-${slot}`;
    const set = cedar.preparsePolicySet(policySetId, {
      staticPolicies: Object.fromEntries(version.policies.map((p) => [p.id, p.text])),
    });
    if (set.type === 'failure') return deny('internal_error', set.errors.map((e) => e.message).join('; '));
    let schemaName: string | undefined;
    if (version.schemaText !== null) {
      schemaName = `schema-${slot}`;
      const schema = cedar.preparseSchema(schemaName, version.schemaText);
      if (schema.type === 'failure') return deny('internal_error', schema.errors.map((e) => e.message).join('; '));
    }
    const lean = options.requestEntitiesOnly ?? requestEntitiesSuffice(version.policies, version.schemaText);
    // One preparsed set per distinct slice (actions with the same policies share it).
    const slices = new Map<string, string>();
    if (options.slicing !== false) {
      let byAction: Map<string, string[]> | null;
      try {
        byAction = sliceByAction(version.policies, version.schemaText, options.actions ?? []);
      } catch {
        byAction = null;
      }
      const text = new Map(version.policies.map((p) => [p.id, p.text]));
      const prepared = new Map<string, string>();
      for (const [action, ids] of byAction ?? []) {
        if (ids.length === version.policies.length) continue;
        const key = ids.join('\n');
        let id = prepared.get(key);
        if (id === undefined) {
          id = `${policySetId}-slice-${prepared.size}`;
          const sliced = cedar.preparsePolicySet(id, { staticPolicies: Object.fromEntries(ids.map((i) => [i, text.get(i) as string])) });
          if (sliced.type === 'failure') return deny('internal_error', sliced.errors.map((e) => e.message).join('; '));
          prepared.set(key, id);
        }
        slices.set(action, id);
      }
    }
    return ok(new PolicyEngine(version, policySetId, schemaName, lean, slices));
  }

  /** How many actions are evaluated against a slice rather than the whole set. */
  get slicedActions(): number {
    return this.slices.size;
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

  evaluate(request: CedarRequest): Outcome<Evaluation> {
    let answer: cedar.AuthorizationAnswer;
    try {
      answer = cedar.statefulIsAuthorized({
        principal: request.principal,
        action: request.action,
        resource: request.resource,
        context: request.context,
        entities: request.entities as EntityJson[],
        preparsedPolicySetId: this.slices.get(request.action.id) ?? this.policySetId,
        ...(this.schemaName === undefined ? {} : { preparsedSchemaName: this.schemaName, validateRequest: true }),
      });
    } catch (err) {
      return deny('internal_error', `policy evaluation failed: ${(err as Error).message}`);
    }
    if (answer.type === 'failure') {
      const message = answer.errors.map((e) => e.message).join('; ');
      if (answer.errors.length > 0 && answer.errors.every((e) => CONTEXT_SCHEMA_ERROR.test(e.message))) {
        return deny('bad_request', `request does not match the schema: ${message}`);
      }
      return deny('internal_error', `policy evaluation failed: ${message}`);
    }
    const { decision, diagnostics } = answer.response;
    return ok({
      decision,
      determining: diagnostics.reason,
      errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    });
  }
}

function uidKey(uid: EntityUidJson): string {
  const u = '__entity' in uid ? uid.__entity : uid;
  return `${u.type}::${u.id}`;
}

/** Each static entity's ancestors, transitively (cycles are cut). */
function transitiveAncestors(entities: readonly EntityJson[]): Map<string, EntityUidJson[]> {
  const parents = new Map(entities.map((e) => [uidKey(e.uid), e.parents]));
  const out = new Map<string, EntityUidJson[]>();
  for (const e of entities) {
    const seen = new Map<string, EntityUidJson>();
    const stack = [...e.parents];
    while (stack.length > 0) {
      const p = stack.pop() as EntityUidJson;
      const key = uidKey(p);
      if (seen.has(key)) continue;
      seen.set(key, p);
      stack.push(...(parents.get(key) ?? []));
    }
    out.set(uidKey(e.uid), [...seen.values()]);
  }
  return out;
}
