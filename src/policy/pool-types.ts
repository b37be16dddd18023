// The one message type shared by the evaluation pool (pool.ts) and its workers (worker.ts).
// Results are values, never thrown errors: errors cross postMessage without their class.

import type { Outcome } from '../core/reasons.js';
import type { Evaluation } from './engine.js';
import type { PolicyVersion } from './loader.js';
import type { CedarRequest } from '../core/cedar-request.js';

/** A policy version as a worker prepares it: what the main thread loaded, never re-read from disk. */
export interface VersionPayload {
  readonly version: PolicyVersion;
  /** The engine's options that depend on the config (actions of the routes, for slicing without a schema). */
  readonly actions: readonly string[];
  /** What the main thread's engine derived from the static entities, which the worker is not sent (engine.ts `derived`). */
  readonly derived: { readonly requestEntitiesOnly: boolean; readonly slicing: boolean };
}

export type WorkerRequest =
  | { readonly kind: 'prepare'; readonly payload: VersionPayload }
  | {
      readonly kind: 'evaluate';
      readonly versionId: string;
      /** Sent only when the worker said it does not hold the version. */
      readonly payload?: VersionPayload;
      readonly requests: readonly CedarRequest[];
    };

export type WorkerResponse =
  | { readonly kind: 'prepared'; readonly versionId: string; readonly ok: boolean; readonly message?: string }
  | { readonly kind: 'need-version'; readonly versionId: string }
  | { readonly kind: 'evaluated'; readonly results: readonly Outcome<Evaluation>[] };
