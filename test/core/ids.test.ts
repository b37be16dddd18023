// Decision ids (src/core/ids.ts): version 4 UUIDs in randomUUID()'s spelling, never repeated,
// across pool refills and when a burst drains the pool before its refill is back.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { poolState, randomId } from '../../src/core/ids.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('randomId', () => {
  it('gives version 4 UUIDs, none twice, through a drained pool refilled in place and pools refilled off the main thread', async () => {
    const seen = new Set<string>();
    const take = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const id = randomId();
        assert.match(id, V4);
        assert.ok(!seen.has(id), `${id} given twice`);
        seen.add(id);
      }
    };
    // Drain the current pool synchronously: its refill (asked for at half) cannot be back yet,
    // so the pool is refilled in place.
    take(poolState().left);
    assert.equal(poolState().left, 0);
    take(10);
    assert.equal(poolState().left, 4096 - 10, 'refilled in place');
    for (let i = 0; i < 1000 && !poolState().nextReady; i++) await tick();
    assert.ok(poolState().nextReady, 'the refill came back');
    // The refilled pool, then another refill asked for at its half and awaited.
    take(3000);
    for (let i = 0; i < 1000 && !poolState().nextReady; i++) await tick();
    assert.ok(poolState().nextReady, 'the second refill came back');
    take(2 * 4096);
  });

  it('spreads its bits: every hex digit of the random positions appears, version and variant fixed', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const id = randomId();
      for (const [k, ch] of [...id.replaceAll('-', '')].entries()) {
        if (k === 12 || k === 16) continue; // version, variant
        counts.set(ch, (counts.get(ch) ?? 0) + 1);
      }
    }
    assert.equal(counts.size, 16);
    // 5000 ids x 30 random hex digits: each digit ~9,375 times; a stuck nibble would be far off.
    for (const [ch, n] of counts) assert.ok(n > 8500 && n < 10300, `digit ${ch} seen ${n} times`);
  });
});
