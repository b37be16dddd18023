// Task state: what was granted to a task, whether it has ended, how many calls it has made and
// which approvals are open. Two implementations: in memory (one process) and Redis (replicas).
// Every method may throw StateUnavailableError; callers deny with state_unavailable then.

import type { MaybePromise } from '../core/maybe.js';

export interface TaskRecord {
  readonly id: string;
  readonly purpose: string;
  readonly tenant: string;
  readonly tools: readonly string[];
  /** The user the agent acts for, or null. */
  readonly subject: string | null;
  readonly parent: string | null;
  /** SPIFFE ID of the workload that started the task: tokens are bound to it (req_wl). */
  readonly workload: string;
  readonly maxCalls: number | null;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface Approval {
  readonly id: string;
  readonly taskId: string;
  /** The action or tool it opens, e.g. "case-management.write" or "POST /cases". */
  readonly scope: string;
  readonly approver: string;
  readonly expiresAt: number;
  /** When set, the approval covers only a call whose arguments have this digest (RFC 8785 + SHA-256). */
  readonly argumentsDigest: string | null;
  /** Calls it may allow before it is spent (uses: 1 is single-use); null: any number until it expires. */
  readonly uses: number | null;
}

/** What a task has done so far: updated with each allowed call, never by a denied one. */
export interface TaskHistory {
  readonly tools: readonly string[];
  /** Union of the labels of every tool called (a high-water mark: it never goes down). */
  readonly labels: readonly string[];
  /** Whether a tool with egress: true was called. */
  readonly egress: boolean;
  readonly counts: Readonly<Record<string, number>>;
}

/**
 * What a workload has done recently, across all its tasks: the tool calls recorded for it within
 * the window (tasks.workloadHistorySeconds), so that a fresh task does not launder what the
 * workload already read. Counts are kept per bucket of a sixtieth of the window.
 */
export interface WorkloadHistory extends TaskHistory {
  /** Calls ever recorded for the workload: the version recordCalls compares. */
  readonly version: number;
}

export const EMPTY_WORKLOAD_HISTORY: WorkloadHistory = Object.freeze({ tools: [], labels: [], egress: false, counts: {}, version: 0 });

/** The workload whose history a recordCalls also updates, at the version the calls were decided on. */
export interface WorkloadMark {
  readonly id: string;
  /** null: not compared (see recordCalls). */
  readonly version: number | null;
  readonly now: number;
}

/** The tool an allowed call used, with its registry labels, for the history. */
export interface ToolTouch {
  readonly tool: string;
  readonly labels: readonly string[];
  readonly egress: boolean;
}

export interface TaskState {
  readonly record: TaskRecord;
  /** Epoch seconds when the task was ended, or null while it runs. */
  readonly endedAt: number | null;
  readonly calls: number;
  /** Unexpired, unspent approvals only; `uses` is the uses left. */
  readonly approvals: readonly Approval[];
  readonly history: TaskHistory;
}

/** What recordCalls answers: `conflict` when the task recorded other calls since the state the
 *  calls were decided on (they must be decided again), with nothing recorded. */
export type RecordResult =
  | { readonly ok: true; readonly calls: number }
  | { readonly ok: false; readonly reason: 'exhausted' | 'ended' | 'conflict'; readonly calls: number };

export class StateUnavailableError extends Error {
  override name = 'StateUnavailableError';
}

/**
 * Where tasks live. The three reads and writes of the Check path (getState, recordCalls,
 * getWorkloadHistory) may answer at once (the memory store) or with a promise (Redis); callers
 * take both (core/maybe.ts), and StateUnavailableError thrown or as a rejection.
 */
export interface TaskStore {
  readonly kind: 'memory' | 'redis';
  createTask(record: TaskRecord): Promise<void>;
  /** The task's live state at `now`, or null when it is unknown (never started, or expired and gone). */
  getState(taskId: string, now: number): MaybePromise<TaskState | null>;
  /** Marks the task ended and tells every replica. False when the task is unknown. */
  endTask(taskId: string, now: number): Promise<boolean>;
  /**
   * Records the allowed calls of one decision (one call, or every call of a batch) in the budget
   * and the history, atomically, and only if the task has recorded exactly `expectedCalls` calls
   * so far: the calls counter is the version of the task's state, so calls decided on a state
   * another call has since changed come back as `conflict` and are decided again. Refused, with
   * nothing recorded, when the task ended or the calls would take it past maxCalls. The
   * workload's history is recorded in the same step, compared the same way on its own version.
   * `spend`: counted approvals the calls used, one use each; one already spent is a conflict.
   * `expectedCalls` null (and the mark's version null): record whatever the state now, for
   * decisions that read nothing recorded calls change; maxCalls and spends stay atomic.
   */
  recordCalls(taskId: string, expectedCalls: number | null, maxCalls: number | null, touches: readonly (ToolTouch | null)[], workload: WorkloadMark, spend?: readonly string[]): MaybePromise<RecordResult>;
  /** The workload's history within the window at `now`; empty for a workload never recorded. */
  getWorkloadHistory(workload: string, now: number): MaybePromise<WorkloadHistory>;
  grantApproval(approval: Approval, taskExpiresAt: number): Promise<void>;
  revokeApproval(taskId: string, approvalId: string): Promise<boolean>;
  /** Called with the id of every task ended anywhere (this replica or another). */
  onTaskEnded(listener: (taskId: string) => void): void;
  healthy(): boolean;
  /** Resolves once the store can answer, or after `timeoutMs` (it is then unhealthy and recovers by itself). */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}
