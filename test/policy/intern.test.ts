// internStrings points equal strings of a structured-cloned version at one copy (policy/intern.ts).
// JavaScript cannot tell two equal strings apart, so what is tested here is that it changes no
// value and touches nothing it must not; the memory it gives back is measured by the benchmarks
// (docs/performance.md, Memory).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { internStrings } from '../../src/policy/intern.js';

describe('internStrings', () => {
  it('leaves every value equal, in objects, arrays and shared sub-objects', () => {
    const shared = { type: 'Group', id: 'g' };
    const value = { a: ['Group', 'Group', { x: 'Group', n: 1, b: true, z: null }], s: shared, t: shared, long: 'p'.repeat(1000), empty: '' };
    const clone = structuredClone(value);
    assert.equal(internStrings(clone), clone);
    assert.deepEqual(clone, value);
  });

  it('does not write into frozen objects or arrays, nor into class instances', () => {
    const frozen = Object.freeze({ a: 'x', inner: { b: 'x' } });
    const frozenArray = Object.freeze(['x', { c: 'x' }]);
    class Box {
      constructor(readonly v: string) {}
    }
    const value = { frozen, frozenArray, box: new Box('x'), map: new Map([['k', 'x']]) };
    assert.doesNotThrow(() => internStrings(value));
    assert.deepEqual(value.frozen, { a: 'x', inner: { b: 'x' } });
    assert.deepEqual(value.frozenArray, ['x', { c: 'x' }]);
    assert.equal(value.box.v, 'x');
    assert.equal(value.map.get('k'), 'x');
  });

  it('takes primitives and null-prototype objects, and stops at a depth without failing', () => {
    assert.equal(internStrings('x'), 'x');
    assert.equal(internStrings(null), null);
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 'x', b: ['x'] });
    internStrings(bare);
    assert.deepEqual({ ...bare }, { a: 'x', b: ['x'] });
    let deep: unknown = 'leaf';
    for (let i = 0; i < 10_000; i++) deep = [deep];
    assert.doesNotThrow(() => internStrings(deep));
    const cyclic: Record<string, unknown> = { s: 'x' };
    cyclic['self'] = cyclic;
    assert.doesNotThrow(() => internStrings(cyclic));
  });
});
