// Which actions' decisions can change as a task records calls. A policy that reads
// context.task.calls, context.task.history or context.workload (or the whole task or context)
// decides on state that concurrent calls of the same task change: such decisions must be
// recorded against the state they were decided on (compare-and-record, one at a time per task).
// A decision that reads none of it cannot be changed by them: it is recorded blindly (the store
// still enforces maxCalls and single-use approvals atomically), and calls of one task run in
// parallel. Read from the load-time facts (facts.ts); unknown facts count as reading it.

import type { PolicyFacts } from './facts.js';
import type { PolicyVersion } from './loader.js';

/** Context paths whose value recorded calls change. */
const RECORDED = [['task', 'calls'], ['task', 'history'], ['workload']] as const;

export function readsRecordedState(facts: PolicyFacts | null): boolean {
  if (facts === null || facts.readsAllContext) return true;
  for (const [path, whole] of facts.contextReads) {
    // The whole task record read as a value (context.task == ..., or passed on whole).
    if (whole && path.length === 1 && path[0] === 'task') return true;
    for (const r of RECORDED) if (r.every((name, i) => path[i] === name)) return true;
  }
  return false;
}

/** Per action: whether any policy that can apply to it reads recorded state. */
export class HistoryDependence {
  private readonly byAction: ReadonlyMap<string, boolean>;
  private readonly otherwise: boolean;

  constructor(version: PolicyVersion, byAction: ReadonlyMap<string, readonly string[]> | null, otherIds: readonly string[] | null) {
    const reads = new Map(version.policies.map((p) => [p.id, readsRecordedState(p.facts)]));
    const any = (ids: readonly string[]): boolean => ids.some((id) => reads.get(id) !== false);
    this.byAction = new Map([...(byAction ?? [])].map(([action, ids]) => [action, any(ids)]));
    // Actions no slice names get the policies with no action constraint, or all of them.
    this.otherwise = any(otherIds ?? version.policies.map((p) => p.id));
  }

  dependsOnHistory(action: string): boolean {
    return this.byAction.get(action) ?? this.otherwise;
  }
}
