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

/** The principal entity for an identity: Workload with its attributes, static parents and pattern groups. */
export function buildPrincipal(identity: Identity, inputs: EntityInputs): EntityJson {
  if (identity.kind === 'anonymous') return entityWithStaticParents(inputs.engine, ANONYMOUS_PRINCIPAL, {}, []);
  const uid = { type: 'Workload', id: identity.spiffe.id };
  const attrs = { trustDomain: identity.spiffe.trustDomain, path: identity.spiffe.path };
  return entityWithStaticParents(inputs.engine, uid, attrs, inputs.groups.size === 0 ? [] : inputs.groups.groupsFor(identity.spiffe.id));
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

