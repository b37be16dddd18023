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

  /**
   * The value under `key`, marked used; with `matches`, only a value it accepts (with `probe`)
   * is answered and marked: a lookup it refuses leaves the entry as it was.
   */
  get(key: string, matches?: (value: V, probe: string) => boolean, probe = ''): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined || (matches !== undefined && !matches(slot.value, probe))) return undefined;
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

/**
 * Verified tokens (JWS compact: header.payload.signature) and what verifying them gave, found by
 * the token itself. Keyed by the token's last KEY_CHARS characters (the end of its signature,
 * random for every signing algorithm Mandate accepts), and a hit only when the whole token is
 * the one that was verified (string equality): a token that shares a cached token's end under
 * another header, payload or signature misses and is verified like any other. V8 hashes a fresh
 * string over its whole length on every lookup: the whole token as the key cost ~1.9-2.3 us for a
 * 1 KB token, its SHA-256 about the same, the signature segment (86 characters for ES256)
 * ~0.3-0.8 us. Only verified tokens are stored, so an attacker's lookups never grow the map,
 * and a lookup that does not match marks nothing.
 */
export class TokenCache<V> {
  private readonly cache: SecondChanceCache<{ readonly token: string; readonly value: V }>;

  constructor(capacity: number) {
    this.cache = new SecondChanceCache(capacity);
  }

  get capacity(): number {
    return this.cache.capacity;
  }

  get size(): number {
    return this.cache.size;
  }

  get(token: string): V | undefined {
    // A token that only shares the signature neither hits nor keeps the entry from eviction.
    return this.cache.get(signatureOf(token), sameToken, token)?.value;
  }

  set(token: string, value: V): void {
    this.cache.set(signatureOf(token), { token, value });
  }

  /** Forgets `token` (only that token: another one under the same signature stays). */
  delete(token: string): void {
    const key = signatureOf(token);
    if (this.cache.get(key, sameToken, token) !== undefined) this.cache.delete(key);
  }

  clear(): void {
    this.cache.clear();
  }
}

const sameToken = (entry: { readonly token: string }, token: string): boolean => entry.token === token;

/** 96 bits of a signature in base64url: two verified tokens sharing them are as likely as a forged signature. */
const KEY_CHARS = 16;

function signatureOf(token: string): string {
  return token.length <= KEY_CHARS ? token : token.slice(token.length - KEY_CHARS);
}

/**
 * Token verifications in progress, by token: concurrent first uses of one token (a workload's
 * first burst of calls, a new task's parallel tool calls) wait for the one verification already
 * running instead of each paying for the signature. Consulted only on a cache miss, where a
 * signature costs ~100 us, so the whole token is the key. An entry leaves when its verification
 * settles: the map holds at most the verifications in flight. `tag` is what the answer depends on
 * besides the token (the bundles' generation): a verification started under another tag is not
 * joined.
 */
export class InFlight<T> {
  private readonly pending = new Map<string, { readonly promise: Promise<T>; readonly tag: number }>();
  /** Calls that waited for a verification already in flight instead of starting one. */
  joined = 0;

  /**
   * The verification of `token` under `tag`: the one in flight, its answer passed through
   * `recheck` (what a cache hit checks: this call's clock, the keys now), or a new one from
   * `start`, which is called only then.
   */
  share(token: string, tag: number, start: () => Promise<T>, recheck: (answer: T) => T | Promise<T>): Promise<T> {
    const running = this.pending.get(token);
    if (running !== undefined && running.tag === tag) {
      this.joined++;
      return running.promise.then(recheck);
    }
    const entry = { promise: start(), tag };
    this.pending.set(token, entry);
    const settled = (): void => {
      if (this.pending.get(token) === entry) this.pending.delete(token);
    };
    entry.promise.then(settled, settled);
    return entry.promise;
  }
}
