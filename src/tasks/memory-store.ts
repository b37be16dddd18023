// Task state in one process: the embedded default. Single-threaded JavaScript makes each
// method atomic; nothing survives a restart.

import type { Approval, ConsumeResult, TaskRecord, TaskState, TaskStore, ToolTouch } from './store.js';

interface Entry {
  record: TaskRecord;
  endedAt: number | null;
  calls: number;
  approvals: Map<string, Approval>;
  tools: Set<string>;
  labels: Set<string>;
  egress: boolean;
  counts: Map<string, number>;
}

export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory' as const;
  private readonly tasks = new Map<string, Entry>();
  private readonly listeners: ((taskId: string) => void)[] = [];

  async createTask(record: TaskRecord): Promise<void> {
    this.tasks.set(record.id, { record, endedAt: null, calls: 0, approvals: new Map(), tools: new Set(), labels: new Set(), egress: false, counts: new Map() });
    this.sweep(record.createdAt);
  }

  async getState(taskId: string, now: number): Promise<TaskState | null> {
    const e = this.tasks.get(taskId);
    if (e === undefined) return null;
    return {
      record: e.record,
      endedAt: e.endedAt,
      calls: e.calls,
      approvals: [...e.approvals.values()].filter((a) => a.expiresAt > now),
      history: { tools: [...e.tools], labels: [...e.labels], egress: e.egress, counts: Object.fromEntries(e.counts) },
    };
  }

  async endTask(taskId: string, now: number): Promise<boolean> {
    const e = this.tasks.get(taskId);
    if (e === undefined) return false;
    e.endedAt ??= now;
    for (const l of this.listeners) l(taskId);
    return true;
  }

  async consumeCall(taskId: string, maxCalls: number | null, touch: ToolTouch | null): Promise<ConsumeResult> {
    const e = this.tasks.get(taskId);
    if (e === undefined || e.endedAt !== null) return { ok: false, reason: 'ended', calls: e?.calls ?? 0 };
    if (maxCalls !== null && e.calls >= maxCalls) return { ok: false, reason: 'exhausted', calls: e.calls };
    e.calls++;
    if (touch !== null) {
      e.tools.add(touch.tool);
      for (const l of touch.labels) e.labels.add(l);
      e.egress ||= touch.egress;
      e.counts.set(touch.tool, (e.counts.get(touch.tool) ?? 0) + 1);
    }
    return { ok: true, calls: e.calls };
  }

  async grantApproval(approval: Approval): Promise<void> {
    this.tasks.get(approval.taskId)?.approvals.set(approval.id, approval);
  }

  async revokeApproval(taskId: string, approvalId: string): Promise<boolean> {
    return this.tasks.get(taskId)?.approvals.delete(approvalId) ?? false;
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
