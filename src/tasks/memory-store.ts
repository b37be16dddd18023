// Task state in one process: the embedded default. Single-threaded JavaScript makes each
// method atomic; nothing survives a restart.

import type { Approval, ConsumeResult, TaskRecord, TaskState, TaskStore } from './store.js';

interface Entry {
  record: TaskRecord;
  endedAt: number | null;
  calls: number;
  approvals: Map<string, Approval>;
}

export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory' as const;
  private readonly tasks = new Map<string, Entry>();
  private readonly listeners: ((taskId: string) => void)[] = [];

  async createTask(record: TaskRecord): Promise<void> {
    this.tasks.set(record.id, { record, endedAt: null, calls: 0, approvals: new Map() });
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
    };
  }

  async endTask(taskId: string, now: number): Promise<boolean> {
    const e = this.tasks.get(taskId);
    if (e === undefined) return false;
    e.endedAt ??= now;
    for (const l of this.listeners) l(taskId);
    return true;
  }

  async consumeCall(taskId: string, maxCalls: number | null): Promise<ConsumeResult> {
    const e = this.tasks.get(taskId);
    if (e === undefined || e.endedAt !== null) return { ok: false, reason: 'ended', calls: e?.calls ?? 0 };
    if (maxCalls !== null && e.calls >= maxCalls) return { ok: false, reason: 'exhausted', calls: e.calls };
    e.calls++;
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

  healthy(): boolean {
    return true;
  }

  async close(): Promise<void> {}

  /** Forgets tasks an hour past their end, so memory stays bounded by live tasks. */
  private sweep(now: number): void {
    for (const [id, e] of this.tasks) if (e.record.expiresAt + 3600 < now) this.tasks.delete(id);
  }
}
