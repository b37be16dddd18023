// Context projection (src/policy/projection.ts): which context paths policies read, the
// conformance proof that gates the projected path, and the projection of types and values.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as cedar from '../../src/policy/cedar.js';
import { addAttributeNames, addContextReads, compileConformance, compileProjector, emptyTrie, projectType, type PathTrie, type SchemaType } from '../../src/policy/projection.js';

function readsOf(...policies: string[]): string[] {
  const trie = emptyTrie();
  for (const text of policies) {
    const json = cedar.policyToJson(text);
    assert.equal(json.type, 'success', text);
    if (json.type === 'success') addContextReads(trie, json.json.conditions);
  }
  const out: string[] = [];
  const walk = (node: PathTrie, path: string): void => {
    if (node.whole) return void out.push(`${path || '<context>'} (whole)`);
    if (node.children.size === 0 && path !== '') out.push(`${path} (present)`);
    for (const [name, sub] of node.children) walk(sub, path === '' ? name : `${path}.${name}`);
  };
  walk(trie, '');
  return out.sort();
}

const when = (cond: string): string => `permit (principal, action, resource) when { ${cond} };`;

describe('context reads of policies', () => {
  const table: [string, string[], string[]][] = [
    ['no condition', ['permit (principal, action, resource);'], []],
    ['one attribute', [when('context.tool == "x"')], ['tool (whole)']],
    ['a nested attribute, by dot and by index', [when('context.http.headers["x-tenant-id"] == "a"')], ['http.headers.x-tenant-id (whole)']],
    ['has keeps only presence', [when('context has task')], ['task (present)']],
    ['multi-attribute has', [when('context has task.history')], ['task.history (present)']],
    ['has then read below', [when('context has task && context.task.tools.contains("a")')], ['task.tools (whole)']],
    ['a method on a record value', [when('context.task.history.labels.containsAny(["pii"])')], ['task.history.labels (whole)']],
    ['context used whole', [when('context == {}')], ['<context> (whole)']],
    ['context inside a record literal', [when('{a: context}.a has tool')], ['<context> (whole)']],
    ['not context: principal attributes', [when('principal.trustDomain == "a" && resource has owner')], []],
    ['a literal that looks like an access is not read', [when('"context.tool" == "x"')], []],
    ['union of policies', [when('context.tool == "x"'), 'forbid (principal, action, resource) unless { context.mcp.approved };'], ['mcp.approved (whole)', 'tool (whole)']],
    ['inside if-then-else and like', [when('if context has body then context.body.priority like "h*" else false')], ['body.priority (whole)']],
  ];
  for (const [name, policies, expected] of table) {
    it(name, () => assert.deepEqual(readsOf(...policies), expected.sort()));
  }
});

const RECORD: SchemaType = {
  type: 'Record',
  attributes: {
    s: { type: 'String' },
    n: { type: 'Long', required: false },
    b: { type: 'Bool', required: false },
    tags: { type: 'Set', element: { type: '__cedar::String' }, required: false },
    inner: { type: 'Inner', required: false },
    args: { type: 'Entity', name: 'McpArguments', required: false },
    amount: { type: 'decimal', required: false },
  },
};
const COMMON = { Inner: { type: 'Record', attributes: { q: { type: 'String' } } } as SchemaType };

describe('conformance proof', () => {
  const conforms = compileConformance(RECORD, COMMON);
  const table: [string, unknown, boolean][] = [
    ['the required attribute alone', { s: 'a' }, true],
    ['every plain attribute', { s: 'a', n: 3, b: false, tags: ['x', 'y'], inner: { q: 'z' }, args: { __entity: { type: 'McpArguments', id: 'call-0' } } }, true],
    ['an undefined attribute counts as absent', { s: 'a', n: undefined }, true],
    ['a required attribute missing', { n: 1 }, false],
    ['an extra attribute (records are closed)', { s: 'a', extra: 1 }, false],
    ['a string where a Long is declared', { s: 'a', n: '1' }, false],
    ['a fraction where a Long is declared', { s: 'a', n: 1.5 }, false],
    ['an unsafe integer (not proven)', { s: 'a', n: 2 ** 60 }, false],
    ['a set with a wrong element', { s: 'a', tags: ['x', 1] }, false],
    ['a nested record missing its required attribute', { s: 'a', inner: {} }, false],
    ['an entity of another type', { s: 'a', args: { __entity: { type: 'Tool', id: 'x' } } }, false],
    ['an entity in implicit form (not proven)', { s: 'a', args: { type: 'McpArguments', id: 'x' } }, false],
    ['an extension type (never proven)', { s: 'a', amount: '1.5' }, false],
    ['an escape where a record is declared', { s: 'a', inner: { __extn: { fn: 'ip', arg: '1.1.1.1' } } }, false],
    ['an array where a record is declared', [], false],
    ['null', null, false],
  ];
  for (const [name, value, expected] of table) {
    it(`${expected ? 'accepts' : 'does not prove'} ${name}`, () => assert.equal(conforms(value), expected));
  }

  it('terminates on recursive types', () => {
    const common = { Node: { type: 'Record', attributes: { next: { type: 'Node', required: false }, v: { type: 'Long' } } } as SchemaType };
    const check = compileConformance({ type: 'Node' }, common);
    assert.equal(check({ v: 1, next: { v: 2, next: { v: 3 } } }), true);
    assert.equal(check({ v: 1, next: { next: { v: 3 } } }), false);
  });
});

describe('projection of types and values', () => {
  const trie = emptyTrie();
  addContextReads(trie, (cedar.policyToJson(when('context has inner && context.n > 1')) as { json: { conditions: unknown } }).json.conditions);

  it('keeps read attributes with their required flags; a presence-only record becomes empty', () => {
    assert.deepEqual(projectType(RECORD, trie, COMMON), {
      type: 'Record',
      attributes: { inner: { type: 'Record', attributes: {}, required: false }, n: { type: 'Long', required: false } },
    });
  });

  it('projects a value the same way, leaving out what is absent', () => {
    const project = compileProjector(trie, RECORD, COMMON);
    assert.deepEqual(project({ s: 'a', n: 2, inner: { q: 'z' }, tags: ['t'] }), { n: 2, inner: {} });
    assert.deepEqual(project({ s: 'a' }), {});
  });

  it('without a schema, keeps entity and extension escapes whole', () => {
    const t = emptyTrie();
    addContextReads(t, (cedar.policyToJson(when('context.e has x')) as { json: { conditions: unknown } }).json.conditions);
    const project = compileProjector(t, null, {});
    assert.deepEqual(project({ e: { __entity: { type: 'T', id: '1' } }, other: 1 }), { e: { __entity: { type: 'T', id: '1' } } });
    assert.deepEqual(project({ e: { x: 1, y: 2 } }), { e: { x: 1 } });
  });
});

describe('attribute names policies read', () => {
  const namesOf = (text: string): string[] => {
    const names = new Set<string>();
    addAttributeNames(names, (cedar.policyToJson(text) as { json: { conditions: unknown } }).json.conditions);
    return [...names].sort();
  };
  const table: [string, string, string[]][] = [
    ['none', 'permit (principal, action, resource);', []],
    ['on principal and resource, by dot and has', when('principal.trustDomain == "a" && resource has owner'), ['owner', 'trustDomain']],
    ['along a context chain', when('context.task.tools.contains("x")'), ['task', 'tools']],
    ['multi-attribute has', when('resource has a.b'), ['a', 'b']],
    ['not in string literals', when('"principal.path" == "x"'), []],
    ['tags are not attributes', when('resource.hasTag("k") && resource.getTag("k") == "v"'), []],
  ];
  for (const [name, text, expected] of table) it(name, () => assert.deepEqual(namesOf(text), expected));
});

describe('projection without a schema refuses what cedar-wasm refuses', () => {
  // A context value cedar-wasm cannot take (a fraction, an integer beyond 2^53) that no policy
  // reads: projected away, it used to turn cedar-wasm's refusal into an allow.
  it('decides such a context as the plain engine does, with and without projection', async () => {
    const { mkdirSync, mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadPolicyVersion } = await import('../../src/policy/loader.js');
    const { PolicyEngine } = await import('../../src/policy/engine.js');
    const dir = mkdtempSync(join(tmpdir(), 'mandate-projection-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'p.cedar'), '@id("read") permit (principal, action == Action::"read", resource) when { context.tool == "t" };\n');
    const version = loadPolicyVersion({ policies: join(dir, 'policies'), schema: null, entities: null });
    const tag = Math.random().toString(36).slice(2);
    const plain = PolicyEngine.prepare(version, `plain-${tag}`, { projection: false, slicing: false, actions: ['read'] });
    const projected = PolicyEngine.prepare(version, `projected-${tag}`, { actions: ['read'] });
    assert.ok(plain.ok && projected.ok);
    const base = { principal: { type: 'Workload', id: 'w' }, action: { type: 'Action', id: 'read' }, resource: { type: 'Ticket', id: 't' }, entities: [] };
    // biome-ignore lint/correctness/noPrecisionLoss: a number a double cannot hold, on purpose
    for (const unread of [1.5, 9007199254740993, [0.25], { deep: { n: -1e300 } }]) {
      const request = { ...base, context: { tool: 't', unread } };
      const a = plain.value.evaluate(request) as { ok: boolean };
      const b = projected.value.evaluate(request);
      if (typeof unread !== 'number' || !Number.isInteger(unread)) assert.equal(a.ok, false, `cedar-wasm took ${JSON.stringify(unread)}`);
      assert.deepEqual(b, a, `projected answer for ${JSON.stringify(unread)}`);
    }
    // A context of Longs is still projected and allowed.
    const fine = { ...base, context: { tool: 't', unread: 9007199254740991 } };
    assert.equal(projected.value.projects(fine), true);
    assert.equal(projected.value.evaluate(fine).ok && (projected.value.evaluate(fine) as { value: { decision: string } }).value.decision, 'allow');
  });
});
