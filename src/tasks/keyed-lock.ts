// Runs async work one at a time per key (a task id): the calls of one task on one replica are
// decided and recorded in turn, so they never decide on a history another of them is about to
// change. Across replicas the store's compare-and-record (recordCalls) catches what this cannot.

export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** `work` is told whether it waited behind other work of the same key (which may have changed what it read before). */
  run<T>(key: string, work: (waited: boolean) => Promise<T>): Promise<T> {
    const waiting = this.tails.get(key);
    const start = (): Promise<T> => work(waiting !== undefined);
    const result = (waiting ?? Promise.resolve()).then(start, start);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
