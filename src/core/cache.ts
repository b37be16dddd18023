// A bounded map with second-chance (CLOCK) eviction: what an LRU gives for hot keys, without
// reordering the map on every hit. A hit only marks its entry used; when the map is full, the
// oldest entry goes unless it was used since it last came round, in which case it is unmarked
// and moved to the back. The verification caches (JWT-SVIDs, transaction tokens) take a hit on
// nearly every Check, and an LRU's delete + set per hit was measurable there.

interface Slot<V> {
  readonly value: V;
  used: boolean;
}

export class SecondChanceCache<V> {
  private readonly map = new Map<string, Slot<V>>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) return undefined;
    slot.used = true;
    return slot.value;
  }

  /** Adds or replaces `key`; past capacity, evicts as described above. A capacity of 0 keeps nothing. */
  set(key: string, value: V): void {
    if (this.capacity <= 0) return;
    this.map.delete(key);
    this.map.set(key, { value, used: false });
    while (this.map.size > this.capacity) this.evictOne();
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  private evictOne(): void {
    // Ends: each entry passed over is unmarked, so a full round finds one to evict.
    for (;;) {
      const first = this.map.entries().next();
      if (first.done === true) return;
      const [key, slot] = first.value;
      this.map.delete(key);
      if (!slot.used) return;
      slot.used = false;
      this.map.set(key, slot);
    }
  }
}
