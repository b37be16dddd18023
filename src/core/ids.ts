// Decision ids: random (version 4) UUIDs from a pool of random bytes refilled off the main
// thread. crypto.randomUUID() refills its own cache of 128 ids synchronously, on the call that
// needs the 129th: that Check paid the refill, and every 128th Check was among the slowest 1%
// of a run (120 of the 300 slowest of 30,000 in process). Here a pool holds 4,096 ids; when half
// of it is used, crypto.randomFill refills the next one on libuv's thread pool. A burst that
// drains the pool first (or a loop that never lets the event loop run, as in-process benchmarks
// do) refills it in place with randomFillSync: once per 4,096 ids, not once per 128.

import { randomBytes, randomFill, randomFillSync } from 'node:crypto';

/** Ids per pool: 64 KiB of random bytes. */
const POOL_IDS = 4096;
const POOL_BYTES = POOL_IDS * 16;

/** Each byte's two hex digits, as character codes. */
const HIGH: readonly number[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0').charCodeAt(0));
const LOW: readonly number[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0').charCodeAt(1));
const DASH = 0x2d;

let pool: Buffer = randomBytes(POOL_BYTES);
let pos = 0;
let next: Buffer | null = null;
let refilling = false;

function refill(): void {
  refilling = true;
  randomFill(Buffer.allocUnsafeSlow(POOL_BYTES), (err, filled) => {
    refilling = false;
    if (err === null) next = filled;
    // On an error the current pool is refilled in place when it runs dry.
  });
}

/** A random UUID (RFC 9562 version 4), as crypto.randomUUID() writes it. */
export function randomId(): string {
  if (pos === POOL_BYTES) {
    if (next !== null) {
      pool = next;
      next = null;
    } else {
      randomFillSync(pool); // every id of it was given out: its bytes are not read again
    }
    pos = 0;
  }
  if (pos === POOL_BYTES / 2 && next === null && !refilling) refill();
  const b = pool;
  const i = pos;
  pos += 16;
  // Version 4 in the high nibble of byte 6, variant 10 in the high bits of byte 8. One
  // String.fromCharCode makes a flat string: a template of 20 parts made a rope, ~3x slower to
  // build, which every reader of the id then had to flatten.
  const x = (k: number): number => b[i + k] as number;
  const v = (x(6) & 0x0f) | 0x40;
  const r = (x(8) & 0x3f) | 0x80;
  return String.fromCharCode(
    HIGH[x(0)] as number, LOW[x(0)] as number, HIGH[x(1)] as number, LOW[x(1)] as number, HIGH[x(2)] as number, LOW[x(2)] as number, HIGH[x(3)] as number, LOW[x(3)] as number, DASH,
    HIGH[x(4)] as number, LOW[x(4)] as number, HIGH[x(5)] as number, LOW[x(5)] as number, DASH,
    HIGH[v] as number, LOW[v] as number, HIGH[x(7)] as number, LOW[x(7)] as number, DASH,
    HIGH[r] as number, LOW[r] as number, HIGH[x(9)] as number, LOW[x(9)] as number, DASH,
    HIGH[x(10)] as number, LOW[x(10)] as number, HIGH[x(11)] as number, LOW[x(11)] as number, HIGH[x(12)] as number, LOW[x(12)] as number,
    HIGH[x(13)] as number, LOW[x(13)] as number, HIGH[x(14)] as number, LOW[x(14)] as number, HIGH[x(15)] as number, LOW[x(15)] as number,
  );
}

/** Test hook: how many ids are left in the current pool, and whether the next one is ready. */
export function poolState(): { readonly left: number; readonly nextReady: boolean } {
  return { left: (POOL_BYTES - pos) / 16, nextReady: next !== null };
}
