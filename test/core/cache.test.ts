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
  it('answers only the very token that was stored, whatever shares its signature segment', () => {
    const c = new TokenCache<string>(4);
    c.set('h.p.sig', 'verified');
    assert.equal(c.get('h.p.sig'), 'verified');
    for (const other of ['h.q.sig', 'g.p.sig', 'h.p.sig ', ' h.p.sig', 'sig', '.sig', 'h.p.sig.', 'h.p.si', 'h.p.sigX']) assert.equal(c.get(other), undefined, other);
    // Deleting another token under the same signature leaves the stored one.
    c.delete('x.y.sig');
    assert.equal(c.get('h.p.sig'), 'verified');
    c.delete('h.p.sig');
    assert.equal(c.get('h.p.sig'), undefined);
  });

  it('does not keep an entry from eviction for a token that only shares its signature', () => {
    const c = new TokenCache<string>(2);
    c.set('h.p.sig', 'genuine');
    c.set('h.p.other', 'second');
    // Forged lookups under the genuine token's signature, then one more token: the genuine
    // entry, never hit, is the oldest untouched one and goes.
    for (let i = 0; i < 3; i++) assert.equal(c.get('x.y.sig'), undefined);
    c.set('h.p.third', 'third');
    assert.deepEqual(['h.p.sig', 'h.p.other', 'h.p.third'].map((t) => c.get(t)), [undefined, 'second', 'third']);
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
