// The verification caches' eviction (src/core/cache.ts): bounded, and an entry hit since it last
// came round outlives one that was not (what an LRU would keep for a hot token).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SecondChanceCache, TokenCache } from '../../src/core/cache.js';
import { seeded } from '../helpers/generate.js';

describe('SecondChanceCache', () => {
  it('keeps the entry that was hit and evicts the oldest untouched one', () => {
    const c = new SecondChanceCache<number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    assert.equal(c.get('a'), 1);
    c.set('d', 4); // a was used: it goes round once; b, untouched, goes
    assert.deepEqual(['a', 'b', 'c', 'd'].map((k) => c.get(k)), [1, undefined, 3, 4]);
    assert.equal(c.size, 3);
  });

  it('never holds more than its capacity, whatever the mix of hits and sets', () => {
    const rand = seeded(11);
    const c = new SecondChanceCache<number>(16);
    for (let i = 0; i < 20_000; i++) {
      const key = `k${Math.floor(rand() * 40)}`;
      if (rand() < 0.6) {
        const v = c.get(key);
        if (v !== undefined) assert.equal(v, Number(key.slice(1)), 'a hit returns what was set');
      } else {
        c.set(key, Number(key.slice(1)));
      }
      assert.ok(c.size <= 16, `size ${c.size} at step ${i}`);
    }
    assert.equal(c.size, 16);
  });

  it('a hot key survives a stream of one-off keys', () => {
    const c = new SecondChanceCache<string>(8);
    c.set('hot', 'token');
    for (let i = 0; i < 1000; i++) {
      assert.equal(c.get('hot'), 'token', `lost after ${i} one-off keys`);
      c.set(`once-${i}`, 'x');
    }
  });

  it('keeps nothing with capacity 0, and forgets a deleted or replaced entry', () => {
    const none = new SecondChanceCache<number>(0);
    none.set('a', 1);
    assert.equal(none.get('a'), undefined);
    const c = new SecondChanceCache<number>(2);
    c.set('a', 1);
    c.set('a', 2);
    assert.equal(c.get('a'), 2);
    assert.equal(c.size, 1);
    c.delete('a');
    assert.equal(c.get('a'), undefined);
  });
});

describe('TokenCache', () => {
  // Longer than the cache's key (a token's last 16 characters), as real signatures are.
  const SIG = 'MEUCIQDx9kT2xV7pQ3rA0bYz';

  it('answers only the very token that was stored, whatever shares its end', () => {
    const c = new TokenCache<string>(4);
    c.set(`h.p.${SIG}`, 'verified');
    assert.equal(c.get(`h.p.${SIG}`), 'verified');
    const others = [`h.q.${SIG}`, `g.p.${SIG}`, `h.p.${SIG} `, ` h.p.${SIG}`, SIG, `.${SIG}`, `h.p.${SIG}.`, `h.p.${SIG.slice(0, -1)}`, `h.p.${SIG}X`, `h.p.X${SIG.slice(1)}`, SIG.slice(-16)];
    for (const other of others) assert.equal(c.get(other), undefined, other);
    // Deleting another token under the same key leaves the stored one.
    c.delete(`x.y.${SIG}`);
    assert.equal(c.get(`h.p.${SIG}`), 'verified');
    c.delete(`h.p.${SIG}`);
    assert.equal(c.get(`h.p.${SIG}`), undefined);
  });

  it('does not keep an entry from eviction for a token that only shares its end', () => {
    const c = new TokenCache<string>(2);
    c.set(`h.p.${SIG}`, 'genuine');
    c.set('h.p.second-token-signature-0001', 'second');
    // Forged lookups under the genuine token's key, then one more token: the genuine entry,
    // never hit, is the oldest untouched one and goes.
    for (let i = 0; i < 3; i++) assert.equal(c.get(`x.y.${SIG}`), undefined);
    c.set('h.p.third-token-signature-0002', 'third');
    assert.deepEqual([`h.p.${SIG}`, 'h.p.second-token-signature-0001', 'h.p.third-token-signature-0002'].map((t) => c.get(t)), [undefined, 'second', 'third']);
  });

  it('keeps nothing with a capacity of 0, and at most its capacity otherwise', () => {
    const none = new TokenCache<number>(0);
    none.set('a.b.c', 1);
    assert.equal(none.get('a.b.c'), undefined);
    const c = new TokenCache<number>(2);
    for (let i = 0; i < 10; i++) c.set(`h.p${i}.s${i}`, i);
    assert.equal(c.size, 2);
  });
});
