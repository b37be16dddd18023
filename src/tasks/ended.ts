// Task ids this replica has heard were ended (from its own EndTask or another replica's, over
// the store's pub/sub channel). A token for one of them is denied without reading the store:
// at once, and even while the store is unreachable. Bounded: the oldest ids are forgotten,
// which is safe because the store still says the task ended.

export class EndedTasks {
  private readonly ids = new Set<string>();

  constructor(private readonly max = 100_000) {}

  add(taskId: string): void {
    this.ids.add(taskId);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value as string);
  }

  has(taskId: string): boolean {
    return this.ids.has(taskId);
  }
}
