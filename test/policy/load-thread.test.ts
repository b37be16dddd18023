// Loading a policy version in a short-lived thread (startup of large versions, every reload)
// must give exactly what loading in place gives: the same version, policies, schema, entities,
// and the same file:line problems for a broken set. A reload must not block the event loop.

import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPolicyVersionAtStartup, loadPolicyVersionBlocking, loadPolicyVersionInThread, versionBytes } from '../../src/policy/load-thread.js';
import { loadPolicyVersion, PolicyLoadError, type PolicyPaths, type PolicyVersion } from '../../src/policy/loader.js';
import { PolicyStore } from '../../src/policy/store.js';
import { writeGrownExample } from '../../bench/policy-set.js';
import { copyExample } from '../helpers/server.js';

function pathsOf(dir: string): PolicyPaths {
  return { policies: join(dir, 'policies'), schema: join(dir, 'schema.cedarschema'), entities: join(dir, 'entities.json') };
}

/** Everything but the load time. */
function comparable(v: PolicyVersion): unknown {
  return { version: v.version, policies: v.policies, schemaText: v.schemaText, entities: v.entities };
}

function problemsOf(load: () => unknown): readonly string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof PolicyLoadError, `expected PolicyLoadError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('the load was expected to fail');
}

describe('policy load in a thread', () => {
  it('gives the same version as loading in place (example grown to 300 policies)', async () => {
    const { dir } = writeGrownExample(300);
    const paths = pathsOf(dir);
    const inPlace = loadPolicyVersion(paths);
    const blocking = loadPolicyVersionBlocking(paths);
    const async = await loadPolicyVersionInThread(paths);
    assert.equal(inPlace.policies.length, 300 + 18);
    assert.deepEqual(comparable(blocking), comparable(inPlace));
    assert.deepEqual(comparable(async), comparable(inPlace));
    assert.ok(blocking.loadedAt instanceof Date);
    assert.ok(Object.isFrozen(blocking) && Object.isFrozen(blocking.policies) && Object.isFrozen(blocking.entities));
  });

  it('reports the same file:line problems for a broken set', async () => {
    const { dir } = copyExample();
    const paths = pathsOf(dir);
    // A syntax error in one file and a policy the schema refuses in another.
    writeFileSync(join(dir, 'policies', 'broken.cedar'), 'permit (principal, action, resource)\nwhen { context.nope == ;\n');
    appendFileSync(join(dir, 'policies', 'typo.cedar'), '\n@id("typo")\npermit (principal, action, resource) when { resource.noSuchAttribute == 1 };\n');
    const inPlace = problemsOf(() => loadPolicyVersion(paths));
    assert.ok(inPlace.some((p) => p.includes('broken.cedar:2')), inPlace.join('\n'));
    assert.deepEqual(problemsOf(() => loadPolicyVersionBlocking(paths)), inPlace);
    await assert.rejects(loadPolicyVersionInThread(paths), (err: unknown) => err instanceof PolicyLoadError && JSON.stringify(err.problems) === JSON.stringify(inPlace));
  });

  it('reports a missing policy directory', () => {
    const paths = { policies: '/nonexistent/mandate-policies', schema: null, entities: null };
    const problems = problemsOf(() => loadPolicyVersionBlocking(paths));
    assert.deepEqual(problems, problemsOf(() => loadPolicyVersion(paths)));
    assert.match(problems[0] ?? '', /^\/nonexistent\/mandate-policies: cannot read the policy directory \(ENOENT\)$/);
  });

  it('is used at startup from a size threshold on the files', () => {
    const { dir } = copyExample();
    const paths = pathsOf(dir);
    const bytes = versionBytes(paths);
    const expected = ['schema.cedarschema', 'entities.json'].reduce((n, f) => n + readFileSync(join(dir, f)).length, 0);
    assert.ok(bytes > expected, 'policy files are counted too');
    assert.deepEqual(comparable(loadPolicyVersionAtStartup(paths, 0)), comparable(loadPolicyVersion(paths)));
    assert.deepEqual(comparable(loadPolicyVersionAtStartup(paths, bytes + 1)), comparable(loadPolicyVersion(paths)));
  });

  it('leaves the event loop free while a reload loads', async () => {
    const { dir } = writeGrownExample(1000);
    const store = PolicyStore.open(pathsOf(dir));
    const before = store.current.version.version;
    appendFileSync(join(dir, 'policies', 'generated.cedar'), '\n@id("added")\npermit (principal, action == Action::"read", resource) when { false };\n');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const result = await store.reload();
    clearInterval(timer);
    assert.deepEqual(result, { ok: true, version: store.current.version.version, changed: true });
    assert.notEqual(store.current.version.version, before);
    assert.ok(store.current.version.policies.some((p) => p.id === 'added'));
    // A load done on the event loop would let no timer run before the reload's answer.
    assert.ok(ticks > 0, `the event loop did not turn during the reload (${ticks} ticks)`);
  });

  it('runs reloads one at a time, and one more when asked during a reload', async () => {
    const { dir } = copyExample();
    const store = PolicyStore.open(pathsOf(dir));
    const first = store.reload();
    // Changed after the first load has started reading: only a reload after it can see this.
    appendFileSync(join(dir, 'policies', 'support.cedar'), '\n@id("late")\npermit (principal, action, resource) when { false };\n');
    const second = store.reload();
    const third = store.reload();
    assert.equal(second, third, 'requests during a reload share the one queued after it');
    await first;
    const r = await second;
    assert.ok(r.ok);
    assert.ok(store.current.version.policies.some((p) => p.id === 'late'));
    const again = await store.reload();
    assert.deepEqual(again, { ok: true, version: store.current.version.version, changed: false });
  });

  it('keeps the previous version when a reload is refused', async () => {
    const { dir } = copyExample();
    const store = PolicyStore.open(pathsOf(dir));
    const before = store.current;
    writeFileSync(join(dir, 'policies', 'broken.cedar'), 'permit (principal, action, resource) when {');
    const result = await store.reload();
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.problems.some((p) => p.includes('broken.cedar:1')), JSON.stringify(result));
    assert.equal(store.current, before);
  });

  it('swaps even when a listener throws, and tells the other listeners', async () => {
    const { dir } = copyExample();
    const store = PolicyStore.open(pathsOf(dir));
    const seen: string[] = [];
    store.onSwap(() => {
      throw new Error('listener failure');
    });
    store.onSwap((engine) => seen.push(engine.version.version));
    appendFileSync(join(dir, 'policies', 'extra.cedar'), '@id("extra")\npermit (principal, action, resource) when { false };\n');
    const result = await store.reload();
    assert.deepEqual(result, { ok: true, version: store.current.version.version, changed: true });
    assert.deepEqual(seen, [store.current.version.version]);
  });
});
