// The request's own entities: the principal built from the verified identity, and a resource,
// each with the parents and attributes the static entities file gives it. Used by the map stage
// for every Check and by the task API for its own decisions (StartTask, GrantTool, ...).

import type { EntityJson } from './cedar.js';
import type { EntityUid } from '../core/cedar-request.js';
import type { Identity } from '../core/identity.js';
import type { WorkloadGroups } from '../identity/groups.js';
import type { PolicyEngine } from './engine.js';

export const ANONYMOUS_PRINCIPAL: EntityUid = Object.freeze({ type: 'Unauthenticated', id: 'anonymous' });

/** What building the request's entities needs: the policy version, and the SPIFFE-ID pattern groups. */
export interface EntityInputs {
  readonly engine: PolicyEngine;
  readonly groups: WorkloadGroups;
}

/**
 * The principal entity for an identity: Workload with its attributes, static parents and pattern
 * groups. It depends only on the SPIFFE ID, the policy version's static entities and the
 * groups, so it is built once per workload and shared, deeply frozen, by that workload's
 * requests (the compiled reader then reads it once too: compiled/readers.ts).
 */
export function buildPrincipal(identity: Identity, inputs: EntityInputs): EntityJson {
  const workload = identity.kind === 'anonymous' ? null : identity;
  let byGroups = PRINCIPALS.get(inputs.engine);
  if (byGroups === undefined) PRINCIPALS.set(inputs.engine, (byGroups = new WeakMap()));
  let kept = byGroups.get(inputs.groups);
  if (kept === undefined) byGroups.set(inputs.groups, (kept = new Map()));
  const key = workload === null ? '' : workload.spiffe.id;
  let entity = kept.get(key);
  if (entity === undefined) {
    if (kept.size >= PRINCIPALS_KEPT) kept.clear();
    entity = deepFreeze(workload === null ? entityWithStaticParents(inputs.engine, ANONYMOUS_PRINCIPAL, {}, []) : buildWorkload(workload, inputs));
    kept.set(key, entity);
  }
  return entity;
}

function buildWorkload(identity: Exclude<Identity, { kind: 'anonymous' }>, inputs: EntityInputs): EntityJson {
  const uid = { type: 'Workload', id: identity.spiffe.id };
  const attrs = { trustDomain: identity.spiffe.trustDomain, path: identity.spiffe.path };
  return entityWithStaticParents(inputs.engine, uid, attrs, inputs.groups.size === 0 ? [] : inputs.groups.groupsFor(identity.spiffe.id));
}

/** Principal entities per policy version, per groups, per SPIFFE ID ('' for anonymous); a full map starts again. */
const PRINCIPALS = new WeakMap<PolicyEngine, WeakMap<WorkloadGroups, Map<string, EntityJson>>>();
const PRINCIPALS_KEPT = 4096;

/** Freezes a JSON value and everything in it (static entity attributes may nest). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** An entity for a resource, keeping what the static entities file says of it. */
export function buildResource(uid: EntityUid, inputs: Pick<EntityInputs, 'engine'>): EntityJson {
  return entityWithStaticParents(inputs.engine, uid, {}, []);
}

/** The request's own entity, keeping the parents and attributes the static entities file gives it. */
function entityWithStaticParents(engine: PolicyEngine, uid: EntityUid, attrs: Record<string, string>, extraParents: EntityUid[]): EntityJson {
  const own = engine.ownEntity(uid, extraParents);
  const known = own.known;
  const parents = own.parents as EntityJson['parents'];
  if (known === undefined) return { uid, attrs, parents };
  return { uid, attrs: { ...known.attrs, ...attrs }, parents, ...(known.tags ? { tags: known.tags } : {}) };
}

