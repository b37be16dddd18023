// A policy version cannot silently shrink (issue #12 §3): symlinked policy files load (a
// Kubernetes ConfigMap volume is all links), links that loop or leave the directory are named
// problems, a version with no policies is refused unless meant, and entities.json numbers are
// read exactly or refused with their line.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPolicyVersion, PolicyLoadError, type PolicyPaths } from '../../src/policy/loader.js';
import { PolicyStore, type ReloadResult } from '../../src/policy/store.js';
import { loadRuntime } from '../../src/cli/runtime.js';
import { decide } from '../../src/check/pipeline.js';
import type { CheckRequestMessage } from '../../src/check/decode.js';
import { copyExample } from '../helpers/server.js';
import { SUPPORT_AGENT, caseBody, checkRequest } from '../helpers/requests.js';

function pathsOf(dir: string, extra: Partial<PolicyPaths> = {}): PolicyPaths {
  return { policies: join(dir, 'policies'), schema: join(dir, 'schema.cedarschema'), entities: join(dir, 'entities.json'), ...extra };
}

function problemsOf(paths: PolicyPaths): readonly string[] {
  try {
    loadPolicyVersion(paths);
  } catch (err) {
    assert.ok(err instanceof PolicyLoadError, `expected PolicyLoadError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('the load was expected to fail');
}

/** Moves the example's policies into a ConfigMap-style volume: files are links into ..data. */
function asConfigMapVolume(policies: string, stamp: string): void {
  const files = readdirSync(policies);
  const data = join(policies, `..${stamp}`);
  mkdirSync(data);
  for (const f of files) renameSync(join(policies, f), join(data, f));
  symlinkSync(`..${stamp}`, join(policies, '..data'));
  for (const f of files) symlinkSync(join('..data', f), join(policies, f));
}

describe('policy files', () => {
  it('loads a symlinked guardrails file, so its forbids keep denying', async () => {
    const { dir, config } = copyExample();
    const shared = join(dir, 'policies', 'shared');
    mkdirSync(shared);
    renameSync(join(dir, 'policies', 'guardrails.cedar'), join(shared, 'guardrails.cedar'));
    symlinkSync(join('shared', 'guardrails.cedar'), join(dir, 'policies', 'guardrails.cedar'));
    const runtime = loadRuntime(config);
    const internal = await decide(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT }) as CheckRequestMessage, runtime.state());
    assert.equal(internal.code, 'policy_denied');
    const critical = await decide(checkRequest('POST', '/cases', { principal: SUPPORT_AGENT, ...caseBody({ ticketId: 'T-1', priority: 'critical' }) }) as CheckRequestMessage, runtime.state());
    assert.equal(critical.code, 'policy_denied');
  });

  it('loads a ConfigMap volume (every file a link into ..data) with all its policies', () => {
    const { dir } = copyExample();
    const before = loadPolicyVersion(pathsOf(dir));
    asConfigMapVolume(join(dir, 'policies'), '2026_11_30_00_00_00.1');
    const after = loadPolicyVersion(pathsOf(dir));
    assert.equal(after.policies.length, before.policies.length);
    assert.deepEqual(after.policies.map((p) => p.id), before.policies.map((p) => p.id));
  });

  it('refuses a symbolic link loop, naming the link', () => {
    const { dir } = copyExample();
    symlinkSync('b.cedar', join(dir, 'policies', 'a.cedar'));
    symlinkSync('a.cedar', join(dir, 'policies', 'b.cedar'));
    const problems = problemsOf(pathsOf(dir));
    assert.ok(problems.some((p) => p.startsWith(join(dir, 'policies', 'a.cedar')) && /loop/.test(p)), problems.join('\n'));
  });

  it('refuses a link that leaves the policy directory, and one that dangles', () => {
    const { dir } = copyExample();
    const outside = mkdtempSync(join(tmpdir(), 'mandate-outside-'));
    writeFileSync(join(outside, 'extra.cedar'), 'permit (principal, action, resource);\n');
    symlinkSync(join(outside, 'extra.cedar'), join(dir, 'policies', 'extra.cedar'));
    symlinkSync('gone.cedar', join(dir, 'policies', 'dangling.cedar'));
    const problems = problemsOf(pathsOf(dir));
    assert.ok(problems.some((p) => p.startsWith(join(dir, 'policies', 'extra.cedar')) && /outside the policy directory/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith(join(dir, 'policies', 'dangling.cedar')) && /does not exist/.test(p)), problems.join('\n'));
  });

  it('refuses a version with no policies unless allowEmptyPolicies says it is meant', () => {
    const { dir } = copyExample();
    for (const f of readdirSync(join(dir, 'policies'))) rmSync(join(dir, 'policies', f));
    const problems = problemsOf(pathsOf(dir));
    assert.match(problems.join('\n'), /no policies were found/);
    assert.equal(loadPolicyVersion(pathsOf(dir, { allowEmptyPolicies: true })).policies.length, 0);
  });

  it('refuses a config whose policy folder is empty at start, from the config key on', () => {
    const { dir, config } = copyExample();
    for (const f of readdirSync(join(dir, 'policies'))) rmSync(join(dir, 'policies', f));
    assert.throws(() => loadRuntime(config), /no policies were found/);
    writeFileSync(config, `${readFileSync(config, 'utf8')}\nallowEmptyPolicies: true\n`);
    assert.equal(loadRuntime(config).store.current.version.policies.length, 0);
  });

  it('refuses entities.json integers a double cannot hold, with file:line', () => {
    const { dir } = copyExample();
    const file = join(dir, 'entities.json');
    const list = JSON.parse(readFileSync(file, 'utf8')) as unknown[];
    const text = `${JSON.stringify(list, null, 2).slice(0, -2)},\n  {"uid": {"type": "Group", "id": "big"}, "attrs": {},\n   "parents": [], "n": 9007199254740993}\n]\n`;
    writeFileSync(file, text);
    const line = text.split('\n').findIndex((l) => l.includes('9007199254740993')) + 1;
    const problems = problemsOf(pathsOf(dir));
    assert.ok(problems.some((p) => p.startsWith(`${file}:${line}: `) && /beyond/.test(p)), problems.join('\n'));
  });

  it('refuses duplicate names in entities.json', () => {
    const { dir } = copyExample();
    const file = join(dir, 'entities.json');
    writeFileSync(file, '[{"uid": {"type": "Group", "id": "a"}, "attrs": {}, "parents": [], "parents": [{"type": "Group", "id": "b"}]}]\n');
    assert.match(problemsOf(pathsOf(dir)).join('\n'), /"parents" appears twice/);
  });

  it('reloads when a ConfigMap volume swaps its ..data link', async () => {
    const { dir } = copyExample();
    const policies = join(dir, 'policies');
    asConfigMapVolume(policies, 'v1');
    const store = PolicyStore.open(pathsOf(dir));
    const first = store.current.version.version;
    // The kubelet writes the new files into a fresh directory, then renames a new link over ..data.
    const next = join(policies, '..v2');
    mkdirSync(next);
    for (const f of readdirSync(join(policies, '..v1'))) writeFileSync(join(next, f), readFileSync(join(policies, '..v1', f)));
    writeFileSync(join(next, 'public.cedar'), '@id("public-status")\npermit (principal, action == Action::"GET /status", resource)\nwhen { context.http.scheme == "https" };\n');
    const results: ReloadResult[] = [];
    const stop = store.watch((r) => results.push(r), 50);
    try {
      symlinkSync('..v2', join(policies, '..data_tmp'));
      renameSync(join(policies, '..data_tmp'), join(policies, '..data'));
      const deadline = Date.now() + 5000;
      while (store.current.version.version === first && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      assert.notEqual(store.current.version.version, first, `no reload after the swap: ${JSON.stringify(results)}`);
      assert.match(store.current.version.policies.find((p) => p.id === 'public-status')?.text ?? '', /https/);
    } finally {
      stop();
    }
  });
});
