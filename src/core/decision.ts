// A decision as the pipeline (check/pipeline.ts) makes it and every recorder reads it: the
// decision log, metrics and traces (telemetry/), shadow evaluation (policy/shadow.ts).

import type { CedarRequest } from './cedar-request.js';
import type { Identity } from './identity.js';
import type { ReasonCode } from './reasons.js';

/** Where a Cedar evaluation ran (policy/engine.ts, policy/pool.ts). */
export type EvaluationPath = 'compiled' | 'wasm-inline' | 'wasm-pool';

export interface Decision {
  readonly decisionId: string;
  readonly allowed: boolean;
  /** null exactly when allowed. */
  readonly code: ReasonCode | null;
  readonly message: string | null;
  readonly identity: Identity | null;
  readonly action: string | null;
  readonly resource: string | null;
  readonly determining: readonly string[];
  readonly errors: readonly string[];
  readonly policyVersion: string;
  /** The Cedar request, kept for --explain and the decision log. */
  readonly cedar: CedarRequest | null;
  /** MCP routes: answer a deny as a JSON-RPC error to this id (docs/tool-calls.md). */
  readonly rpc: { readonly id: string | number | null; readonly errorCode: number | null; readonly denyStatus: 200 | 400 | 403 } | null;
  /** What Cedar answered (the last call evaluated), or null when the request never reached policy. */
  readonly policyDecision: 'allow' | 'deny' | null;
  /** The task the request ran under, when it carried a valid task token, and the user it acts for. */
  readonly taskId: string | null;
  readonly subject: string | null;
  /** Time spent in Cedar evaluation for this request, in microseconds (0 when it never got there). */
  readonly evaluationUs: number;
  /** Where the last call was evaluated: compiled policies, cedar-wasm on the main thread or in the pool; null when never. */
  readonly evaluationPath: EvaluationPath | null;
  /** approval_required: what approval would unlock the call. */
  readonly approval: { readonly task: string | null; readonly tool: string; readonly argumentsDigest: string | null } | null;
}
