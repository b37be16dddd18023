// Task state in one process: the embedded default. Single-threaded JavaScript makes each
// method atomic; nothing survives a restart.

import { EMPTY_WORKLOAD_HISTORY, type Approval, type RecordResult, type TaskRecord, type TaskState, type TaskStore, type ToolTouch, type WorkloadHistory, type WorkloadMark } from './store.js';
import { WorkloadWindow } from './workload-window.js';

interface Entry {
  record: TaskRecord;
  endedAt: number | null;
  calls: number;
  approvals: Map<string, Approval>;
  /** Uses left of counted approvals (Approval.uses). */
  usesLeft: Map<string, number>;
  tools: Set<string>;
  labels: Set<string>;
  egress: boolean;
  counts: Map<string, number>;
  // What getState hands out, kept while it holds: every decision of a task reads its state, and
  // most calls change only the counts. Each is replaced (set null), never changed in place: a
  // state handed out earlier keeps the lists it was read with.
  /** The approvals open at the second `approvalsAt` (they expire by the second). */
  approvalsList: readonly Approval[] | null;
  approvalsAt: number;
  toolsList: readonly string[] | null;
  labelsList: readonly string[] | null;
}

interface WorkloadEntry {
  version: number;
  /** Epoch seconds each label, tool and egress was last seen; call counts per bucket. */
  labels: Map<string, number>;
  tools: Map<string, number>;
  egressAt: number;
  counts: Map<string, Map<number, number>>;
}

export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory' as const;
  private readonly tasks = new Map<string, Entry>();
  private readonly workloads = new Map<string, WorkloadEntry>();
  private readonly listeners: ((taskId: string) => void)[] = [];
  private readonly window: WorkloadWindow;

  constructor(workloadHistorySeconds = 3600) {
    this.window = new WorkloadWindow(workloadHistorySeconds);
  }

  async createTask(record: TaskRecord): Promise<void> {
    this.tasks.set(record.id, { record, endedAt: null, calls: 0, approvals: new Map(), usesLeft: new Map(), tools: new Set(), labels: new Set(), egress: false, counts: new Map(), approvalsList: null, approvalsAt: 0, toolsList: null, labelsList: null });
    this.sweep(record.createdAt);
  }

  getState(taskId: string, now: number): TaskState | null {
    const e = this.tasks.get(taskId);
    if (e === undefined) return null;
    if (e.approvalsList === null || e.approvalsAt !== now) {
      e.approvalsList = [...e.approvals.values()]
        .map((a) => (a.uses === null ? a : { ...a, uses: e.usesLeft.get(a.id) ?? 0 }))
        .filter((a) => a.expiresAt > now && (a.uses === null || a.uses > 0));
      e.approvalsAt = now;
    }
    e.toolsList ??= [...e.tools];
    e.labelsList ??= [...e.labels];
    return {
      record: e.record,
      endedAt: e.endedAt,
      calls: e.calls,
      approvals: e.approvalsList,
      history: { tools: e.toolsList, labels: e.labelsList, egress: e.egress, counts: countsRecord(e.counts) },
    };
  }

  async endTask(taskId: string, now: number): Promise<boolean> {
    const e = this.tasks.get(taskId);
    if (e === undefined) return false;
    e.endedAt ??= now;
    for (const l of this.listeners) l(taskId);
    return true;
  }

  recordCalls(taskId: string, expectedCalls: number | null, maxCalls: number | null, touches: readonly (ToolTouch | null)[], workload: WorkloadMark, spend: readonly string[] = []): RecordResult {
    const e = this.tasks.get(taskId);
    if (e === undefined || e.endedAt !== null) return { ok: false, reason: 'ended', calls: e?.calls ?? 0 };
    const w = this.workloads.get(workload.id);
    if ((expectedCalls !== null && e.calls !== expectedCalls) || (workload.version !== null && (w?.version ?? 0) !== workload.version)) return { ok: false, reason: 'conflict', calls: e.calls };
    if (spend.some((id) => (e.usesLeft.get(id) ?? 0) <= 0)) return { ok: false, reason: 'conflict', calls: e.calls };
    if (maxCalls !== null && e.calls + touches.length > maxCalls) return { ok: false, reason: 'exhausted', calls: e.calls };
    for (const id of spend) e.usesLeft.set(id, (e.usesLeft.get(id) as number) - 1);
    if (spend.length > 0) e.approvalsList = null;
    e.calls += touches.length;
    this.recordWorkload(workload, touches, w);
    for (const touch of touches) {
      if (touch === null) continue;
      if (!e.tools.has(touch.tool)) {
        e.tools.add(touch.tool);
        e.toolsList = null;
      }
      for (const l of touch.labels) {
        if (e.labels.has(l)) continue;
        e.labels.add(l);
        e.labelsList = null;
      }
      e.egress ||= touch.egress;
      e.counts.set(touch.tool, (e.counts.get(touch.tool) ?? 0) + 1);
    }
    return { ok: true, calls: e.calls };
  }

  getWorkloadHistory(workload: string, now: number): WorkloadHistory {
    const w = this.workloads.get(workload);
    if (w === undefined) return EMPTY_WORKLOAD_HISTORY;
    const since = this.window.since(now);
    const within = (m: Map<string, number>) => [...m].filter(([, at]) => at > since).map(([name]) => name);
    const firstBucket = this.window.firstBucket(now);
    const counts: Record<string, number> = {};
    for (const [tool, buckets] of w.counts) {
      let n = 0;
      for (const [bucket, c] of buckets) if (bucket >= firstBucket) n += c;
      if (n > 0) counts[tool] = n;
    }
    return { tools: within(w.tools), labels: within(w.labels), egress: w.egressAt > since, counts, version: w.version };
  }

  private recordWorkload(mark: WorkloadMark, touches: readonly (ToolTouch | null)[], existing: WorkloadEntry | undefined): void {
    let w = existing;
    if (w === undefined) this.workloads.set(mark.id, (w = { version: 0, labels: new Map(), tools: new Map(), egressAt: 0, counts: new Map() }));
    w.version += touches.length;
    const bucket = this.window.bucket(mark.now);
    for (const t of touches) {
      if (t === null) continue;
      w.tools.set(t.tool, mark.now);
      for (const l of t.labels) w.labels.set(l, mark.now);
      if (t.egress) w.egressAt = mark.now;
      let buckets = w.counts.get(t.tool);
      if (buckets === undefined) w.counts.set(t.tool, (buckets = new Map()));
      buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
    }
    // Forget buckets that left the window, so a workload's entry stays bounded.
    const first = this.window.firstBucket(mark.now);
    for (const buckets of w.counts.values()) for (const b of buckets.keys()) if (b < first) buckets.delete(b);
  }

  async grantApproval(approval: Approval): Promise<void> {
    const e = this.tasks.get(approval.taskId);
    if (e === undefined) return;
    e.approvals.set(approval.id, approval);
    if (approval.uses !== null) e.usesLeft.set(approval.id, approval.uses);
    e.approvalsList = null;
  }

  async revokeApproval(taskId: string, approvalId: string): Promise<boolean> {
    const e = this.tasks.get(taskId);
    if (e === undefined) return false;
    e.approvalsList = null;
    return e.approvals.delete(approvalId);
  }

  onTaskEnded(listener: (taskId: string) => void): void {
    this.listeners.push(listener);
  }

  async ready(): Promise<boolean> {
    return true;
  }

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {}

  /** Forgets tasks an hour past their end, so memory stays bounded by live tasks. */
  private sweep(now: number): void {
    for (const [id, e] of this.tasks) if (e.record.expiresAt + 3600 < now) this.tasks.delete(id);
  }
}

/**
 * Object.fromEntries(counts), which over a Map takes its generic, iterator path (~4x slower).
 * `__proto__`, the one accessor of Object.prototype, is defined as an own key as fromEntries
 * defines it: assigned, it would set the prototype and the count would be lost.
 */
function countsRecord(counts: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [tool, n] of counts) {
    if (tool === '__proto__') Object.defineProperty(out, tool, { value: n, writable: true, enumerable: true, configurable: true });
    else out[tool] = n;
  }
  return out;
}
