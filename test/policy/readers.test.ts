// The compiled path's value readers (src/policy/compiled/readers.ts), generated as JavaScript
// from the schema: they must accept exactly what the conformance proof of the cedar-wasm path
// accepts (projection.ts compileConformance), convert only what policies read, and keep every
// attribute name a string, whatever it spells. The engine-level differential test holds the
// whole compiled path to cedar-wasm; this one looks at the readers alone, on the cases that are
// easy to get wrong in generated code.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileEntityReader, compileReader, NOT_PROVEN } from '../../src/policy/compiled/readers.js';
import { Entities, Uid } from '../../src/policy/compiled/values.js';
import { compileConformance, type PathTrie, type SchemaType } from '../../src/policy/projection.js';
import { seeded } from '../helpers/generate.js';

const STRING: SchemaType = { type: 'String' };
const LONG: SchemaType = { type: 'Long' };
const optional = (t: SchemaType): SchemaType => ({ ...t, required: false });

/** An attribute name that would break generated source written without escaping. */
const ODD = 'quo"te\\\n*/ `\u2028 x';

const CONTEXT: SchemaType = {
  type: 'Record',
  attributes: {
    s: STRING,
    n: optional(LONG),
    b: optional({ type: '__cedar::Bool' }),
    tags: optional({ type: 'Set', element: STRING }),
    who: optional({ type: 'Entity', name: 'Workload' }),
    inner: optional({ type: 'Record', attributes: { x: LONG, y: optional(STRING) } }),
    toString: optional(STRING),
    ['__proto__']: optional(LONG),
    [ODD]: optional(STRING),
    address: optional({ type: 'Extension', name: 'ipaddr' }),
    open: optional({ type: 'Record', attributes: {}, additionalAttributes: true }),
    common: optional({ type: 'Ticket' }),
  },
};
const COMMON = { Ticket: { type: 'Record', attributes: { id: STRING } } } as const;

/** Policies read s, n, inner.x, who, toString, __proto__, the odd name and common; the rest is only checked. */
function trie(paths: readonly (readonly string[])[]): PathTrie {
  const root: PathTrie = { whole: false, children: new Map() };
  for (const path of paths) {
    let node = root;
    for (const name of path) {
      let next = node.children.get(name);
      if (next === undefined) node.children.set(name, (next = { whole: false, children: new Map() }));
      node = next;
    }
    node.whole = true;
  }
  return root;
}
const READ = trie([['s'], ['n'], ['inner', 'x'], ['who'], ['toString'], ['__proto__'], [ODD], ['common']]);

const read = compileReader(CONTEXT, COMMON, READ);
const check = compileReader(CONTEXT, COMMON, READ, false);
const conforms = compileConformance(CONTEXT, COMMON);

describe('compiled value readers', () => {
  it('convert what policies read and leave the rest out', () => {
    const out = read({ s: 'a', n: -0, b: true, tags: ['x'], who: { __entity: { type: 'Workload', id: 'w' } }, inner: { x: 7, y: 'z' }, common: { id: 't' } }) as Record<string, unknown>;
    assert.notEqual(out, NOT_PROVEN);
    assert.deepEqual(Object.keys(out).sort(), ['common', 'inner', 'n', 's', 'who']);
    assert.equal(out['s'], 'a');
    assert.ok(Object.is(out['n'], 0), 'a -0 reads as 0');
    assert.deepEqual({ ...(out['inner'] as object) }, { x: 7 });
    assert.ok(out['who'] instanceof Uid);
    assert.equal((out['who'] as Uid).key, new Uid('Workload', 'w').key);
    assert.equal(check({ s: 'a', n: 1 }), true);
  });

  it('give records with nothing of Object.prototype behind them', () => {
    const out = read({ s: 'a' }) as Record<string, unknown>;
    assert.equal(out['toString'], undefined);
    assert.equal(out['constructor'], undefined);
    assert.equal(out['hasOwnProperty'], undefined);
    assert.equal('toString' in out, false);
    const named = read(JSON.parse(`{"s": "a", "toString": "t", "__proto__": 5, ${JSON.stringify(ODD)}: "q"}`)) as Record<string, unknown>;
    assert.equal(named['toString'], 't');
    assert.ok(Object.hasOwn(named, '__proto__'), '__proto__ is an attribute like any other');
    assert.equal(Object.getOwnPropertyDescriptor(named, '__proto__')?.value, 5);
    assert.equal(named[ODD], 'q');
  });

  it('refuse what does not conform, whichever attribute is wrong', () => {
    const refused: unknown[] = [
      null,
      'a',
      [],
      {},
      { n: 1 },
      { s: 1 },
      { s: 'a', extra: 1 },
      { s: 'a', n: 2 ** 53 },
      { s: 'a', n: 1.5 },
      { s: 'a', tags: [1] },
      { s: 'a', tags: 'x' },
      { s: 'a', who: { __entity: { type: 'Group', id: 'g' } } },
      { s: 'a', who: { __entity: { type: 'Workload', id: 'w', more: 1 } } },
      { s: 'a', who: { __entity: { type: 'Workload', id: 'w' }, more: 1 } },
      { s: 'a', inner: {} },
      { s: 'a', inner: { x: 1, z: 1 } },
      { s: 'a', address: '10.0.0.1' },
      { s: 'a', open: {} },
      { s: 'a', common: {} },
      { s: 'a', __entity: { type: 'T', id: 'i' } },
      { s: 'a', __extn: { fn: 'ip', arg: '10.0.0.1' } },
    ];
    for (const v of refused) {
      assert.equal(read(v), NOT_PROVEN, JSON.stringify(v));
      assert.equal(check(v), NOT_PROVEN, JSON.stringify(v));
      assert.equal(conforms(v as never), false, `the proof accepts ${JSON.stringify(v)}`);
    }
  });

  it('refuse a record that spells one of the escapes of Cedar JSON, even when the schema declares the name', () => {
    const pair: SchemaType = { type: 'Record', attributes: { type: STRING, id: STRING, fn: optional(STRING), arg: optional(STRING) } };
    const escapes: SchemaType = { type: 'Record', attributes: { __entity: optional(pair), __extn: optional(pair), s: optional(STRING) } };
    const reader = compileReader(escapes, {}, null);
    assert.notEqual(reader({ s: 'a' }), NOT_PROVEN);
    assert.equal(reader({ __entity: { type: 'T', id: 'i' } }), NOT_PROVEN);
    assert.equal(reader({ __extn: { type: 'T', id: 'i' } }), NOT_PROVEN);
    assert.equal(compileConformance(escapes, {})({ __entity: { type: 'T', id: 'i' } }), false);
  });

  it('take an attribute whose value is undefined as absent', () => {
    assert.deepEqual(Object.keys(read({ s: 'a', n: undefined }) as object), ['s']);
    assert.equal(read({ s: undefined }), NOT_PROVEN);
  });

  it('accept exactly what the conformance proof accepts, on generated values', () => {
    const seed = Number(process.env['MANDATE_FUZZ_SEED'] ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const anyValue = (): unknown => pick<unknown>(['x', 1, -0, 2 ** 53, true, null, [], ['x'], {}, { __entity: { type: 'Workload', id: 'w' } }, { x: 1 }, { id: 't' }, undefined]);
    // A value of the declared type for most attributes, anything for the others.
    const good: Record<string, () => unknown> = {
      s: () => 'a',
      n: () => pick([0, -0, 5, -(2 ** 53 - 1)]),
      b: () => random() < 0.5,
      tags: () => pick([[], ['x'], ['x', 'y']]),
      who: () => ({ __entity: { type: 'Workload', id: 'w' } }),
      inner: () => pick([{ x: 1 }, { x: 1, y: 'y' }]),
      toString: () => 't',
      ['__proto__']: () => 1,
      [ODD]: () => 'q',
      common: () => ({ id: 't' }),
    };
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const v: Record<string, unknown> = {};
      for (const name of Object.keys(CONTEXT.attributes ?? {})) {
        const make = Object.hasOwn(good, name) ? good[name] : undefined;
        // Extension values and open records are never proven: rarely present.
        if (random() < (make === undefined ? 0.9 : 0.3)) continue;
        v[name] = make !== undefined && random() < 0.9 ? make() : anyValue();
      }
      if (random() < 0.05) v['unknown'] = anyValue();
      const expected = conforms(v as never);
      assert.equal(read(v) !== NOT_PROVEN, expected, `seed ${seed}, value ${i}: ${JSON.stringify(v)}`);
      assert.equal(check(v) === true, expected, `seed ${seed}, value ${i} (check only)`);
      if (expected) accepted++;
    }
    assert.ok(accepted > 300, `only ${accepted} of 3,000 generated values conformed (seed ${seed})`);
  });
});

describe('entity readers: parents kept with a frozen list', () => {
  const reader = compileEntityReader({ memberOfTypes: ['Group'] }, {}, new Set());
  const group = (id: string) => Object.freeze({ type: 'Group', id });
  const entity = (parents: unknown) => ({ uid: { type: 'Workload', id: 'w' }, attrs: {}, parents }) as never;
  const read = (parents: unknown) => reader(entity(parents));

  it('read a frozen list of frozen uids once and share its keys and their set', () => {
    const list = Object.freeze([group('a'), group('b')]);
    const first = read(list);
    const second = read(list);
    assert.ok(first !== NOT_PROVEN && second !== NOT_PROVEN);
    assert.deepEqual(first.parents, [new Uid('Group', 'a').key, new Uid('Group', 'b').key]);
    assert.equal(first.parentSet, second.parentSet, 'one set for the list');
    assert.deepEqual([...(first.parentSet ?? [])], [...first.parents]);
    // The entities of a request with no parent present take that set as the ancestors.
    const alone = new Entities(new Map([[first.uid.key, first]]), false);
    assert.equal(alone.ancestors(first.uid.key), first.parentSet);
  });

  it('read a list that can change every time, and keep nothing of it', () => {
    const list = [group('a')];
    const before = read(list);
    list.push(group('b'));
    const after = read(list);
    assert.ok(before !== NOT_PROVEN && after !== NOT_PROVEN);
    assert.equal(before.parents.length, 1);
    assert.equal(after.parents.length, 2, 'the mutation is seen');
    assert.equal(after.parentSet, undefined);
    // A frozen list holding a uid that is not frozen is read every time too.
    const loose = { type: 'Group', id: 'c' };
    const frozenList = Object.freeze([loose]);
    assert.equal((read(frozenList) as { parents: readonly string[] }).parents[0], new Uid('Group', 'c').key);
    loose.id = 'd';
    assert.equal((read(frozenList) as { parents: readonly string[] }).parents[0], new Uid('Group', 'd').key);
  });

  it('refuse a frozen list with a parent of a type the schema does not allow, every time', () => {
    const list = Object.freeze([group('a'), Object.freeze({ type: 'Team', id: 't' })]);
    assert.equal(read(list), NOT_PROVEN);
    assert.equal(read(list), NOT_PROVEN);
  });

  it('follow parents through the entities present when some parent is itself present', () => {
    const list = Object.freeze([group('a')]);
    const w = read(list);
    assert.ok(w !== NOT_PROVEN);
    const a = { uid: new Uid('Group', 'a'), attrs: {}, parents: [new Uid('Group', 'root').key], tags: null };
    const linked = new Entities(new Map([[w.uid.key, w], [a.uid.key, a]]), true);
    assert.deepEqual([...linked.ancestors(w.uid.key)].sort(), [new Uid('Group', 'a').key, new Uid('Group', 'root').key].sort());
  });
});

describe('entity readers: a deeply frozen entity read once', () => {
  const reader = compileEntityReader({ memberOfTypes: ['Group'], shape: { type: 'Record', attributes: { path: STRING } } }, {}, new Set(['path']));
  const deepFreeze = <T>(v: T): T => {
    if (typeof v === 'object' && v !== null) {
      Object.freeze(v);
      for (const x of Object.values(v)) deepFreeze(x);
    }
    return v;
  };
  const entity = (attrs: object) => ({ uid: { type: 'Workload', id: 'w' }, attrs, parents: [{ type: 'Group', id: 'a' }] });

  it('share the data read from a deeply frozen entity (the principal, built once per workload)', () => {
    const e = deepFreeze(entity({ path: '/ns/a' }));
    const first = reader(e as never);
    assert.ok(first !== NOT_PROVEN);
    assert.equal(reader(e as never), first);
    assert.equal((first.attrs as Record<string, unknown>)['path'], '/ns/a');
  });

  it('read again an entity that is frozen only on top, or frozen with a getter, every time', () => {
    const attrs = { path: '/ns/a' };
    const shallow = Object.freeze(entity(attrs));
    const first = reader(shallow as never);
    attrs.path = '/ns/b';
    const second = reader(shallow as never);
    assert.ok(first !== NOT_PROVEN && second !== NOT_PROVEN);
    assert.equal((second.attrs as Record<string, unknown>)['path'], '/ns/b', 'the change is seen');
    let n = 0;
    const getter = deepFreeze(entity(Object.defineProperty({}, 'path', { get: () => `/ns/${n++}`, enumerable: true })));
    const g1 = reader(getter as never);
    const g2 = reader(getter as never);
    assert.ok(g1 !== NOT_PROVEN && g2 !== NOT_PROVEN);
    assert.notEqual((g1.attrs as Record<string, unknown>)['path'], (g2.attrs as Record<string, unknown>)['path']);
  });
});
