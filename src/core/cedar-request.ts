// A Cedar authorization request as Mandate builds it (check/map.ts) and evaluates it
// (policy/engine.ts): part of the decision vocabulary. The value types are cedar-wasm's own
// (types only; only policy/ calls cedar-wasm).

import type { Context, EntityJson } from '@cedar-policy/cedar-wasm/nodejs';

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
