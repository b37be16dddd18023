// mandate test (src/cli/test.ts), spawned as an operator runs it: Cedar integration-test cases
// (the format of cedar-policy/cedar-integration-tests) and Mandate's own request tests, one line
// per failing request, `N passed, M failed` last, exit 1 on any failure.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import { MAIN_JS, REQUESTS_DIR } from '../helpers/server.js';

function mandateTest(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN_JS, 'test', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

const request = (principal: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  principal: { type: 'User', id: principal },
  action: { type: 'Action', id: 'view' },
  resource: { type: 'Doc', id: 'd' },
  context: {},
  validateRequest: true,
  ...extra,
});

/** A folder laid out as Cedar's repository is: the case names its files relative to the folder that holds `cases/`. */
function cedarCases(): string {
  const root = mkdtempSync(join(tmpdir(), 'mandate-cedar-cases-'));
  mkdirSync(join(root, 'cases'));
  writeFileSync(join(root, 'cases', 'policies.cedar'), [
    'permit(principal, action == Action::"view", resource) when { principal.level >= 3 };',
    'forbid(principal == User::"mallory", action, resource);',
    // Longs beyond 2^53 are exact: only the first of these two literals equals the attribute.
    'permit(principal, action, resource) when { principal.level == 9223372036854775807 };',
    'permit(principal, action, resource) when { principal.level == 9223372036854775806 };',
  ].join('\n'));
  writeFileSync(join(root, 'cases', 'schema.cedarschema'), 'entity User { level: Long, nothing?: Bool };\nentity Doc;\naction view appliesTo { principal: User, resource: Doc };\n');
  // Written by hand: JSON.stringify cannot write 9223372036854775807 exactly.
  writeFileSync(join(root, 'cases', 'entities.json'), '[{"uid":{"type":"User","id":"alice"},"attrs":{"level":5},"parents":[]},{"uid":{"type":"User","id":"mallory"},"attrs":{"level":9},"parents":[]},{"uid":{"type":"User","id":"big"},"attrs":{"level":9223372036854775807},"parents":[]},{"uid":{"type":"User","id":"low"},"attrs":{"level":1},"parents":[]}]');
  const c = (requests: unknown[]): string => JSON.stringify({ policies: 'cases/policies.cedar', entities: 'cases/entities.json', schema: 'cases/schema.cedarschema', shouldValidate: true, requests });
  writeFileSync(join(root, 'cases', 'good.json'), c([
    request('alice', { description: 'alice views', decision: 'allow', reason: ['policy0'], errors: [] }),
    request('mallory', { description: 'mallory is forbidden', decision: 'deny', reason: ['policy1'], errors: [] }),
    request('big', { description: 'a long beyond 2^53', decision: 'allow', reason: ['policy0', 'policy2'], errors: [] }),
    request('low', { description: 'low level', decision: 'deny', reason: [], errors: [] }),
    request('ghost', { description: 'no such entity: every policy reading it errors', decision: 'deny', reason: [], errors: ['policy0', 'policy2', 'policy3'] }),
  ]));
  writeFileSync(join(root, 'cases', 'wrong.json'), c([
    request('alice', { description: 'wrongly expected deny', decision: 'deny', reason: [], errors: [] }),
    request('low', { description: 'right', decision: 'deny', reason: [], errors: [] }),
  ]));
  return root;
}

describe('mandate test', () => {
  it('runs Cedar test cases: one line per failing request, then the count; exit 1 on a failure', async () => {
    const root = cedarCases();
    const out = await mandateTest(['cases'], root);
    assert.equal(out.code, 1, out.stderr);
    const lines = out.stdout.trimEnd().split('\n');
    assert.equal(lines.at(-1), '6 passed, 1 failed');
    assert.deepEqual(lines.slice(0, -1), ['cases/wrong.json: wrongly expected deny: want deny reason=[] errors=[], got allow reason=[policy0] errors=[]']);
    assert.equal(out.stderr, '');
  });

  it('compares shouldValidate with cedar-wasm\'s validator: a case that should validate and does not fails; one the newer validator accepts is a note', async () => {
    const root = cedarCases();
    writeFileSync(join(root, 'cases', 'optional.cedar'), 'permit(principal, action, resource) when { principal.nothing };\n');
    const c = (shouldValidate: boolean, policies: string): string =>
      JSON.stringify({ policies, entities: 'cases/entities.json', schema: 'cases/schema.cedarschema', shouldValidate, requests: [request('low', { description: 'low', decision: 'deny', reason: [], errors: ['policy0'] })] });
    mkdirSync(join(root, 'validation'));
    writeFileSync(join(root, 'validation', 'unsafe.json'), c(true, 'cases/optional.cedar'));
    const fails = await mandateTest(['validation'], root);
    assert.equal(fails.code, 1);
    assert.match(fails.stdout, /^validation\/unsafe\.json: shouldValidate: want true, got false \(policy0: .*optional attribute `nothing`.*\)\n1 passed, 1 failed\n$/);
    writeFileSync(join(root, 'validation', 'unsafe.json'), c(false, 'cases/optional.cedar'));
    const notes = await mandateTest(['validation'], root);
    assert.equal(notes.code, 0, notes.stdout);
    assert.equal(notes.stdout, '1 passed, 0 failed\n');
    assert.equal(notes.stderr, '');
    // A case marked not validating whose policies cedar-wasm validates: a note, not a failure.
    writeFileSync(join(root, 'validation', 'unsafe.json'), c(false, 'cases/policies.cedar').replace('"errors":["policy0"]', '"errors":[]'));
    const newer = await mandateTest(['validation'], root);
    assert.equal(newer.code, 0, newer.stdout);
    assert.match(newer.stderr, /^note: 1 case\(s\) marked shouldValidate: false validate with cedar-wasm [\d.]+ .*validation\/unsafe\.json\n$/);
  });

  it('exits 0 when every request passes, and counts them', async () => {
    const root = cedarCases();
    const out = await mandateTest([join('cases', 'good.json'), '--verbose'], root);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.equal(out.stdout, '5 passed, 0 failed\n');
    assert.match(out.stderr, /^5 Cedar requests decided by the compiled evaluator\n$/);
  });

  it('finds a case\'s files from the folders above it when run elsewhere', async () => {
    const root = cedarCases();
    const out = await mandateTest([join(root, 'cases', 'good.json')], tmpdir());
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.equal(out.stdout, '5 passed, 0 failed\n');
  });

  it('runs the example requests through the whole pipeline against --config', async () => {
    const count = readdirSync(REQUESTS_DIR).filter((f) => f.endsWith('.json')).length;
    const out = await mandateTest(['--config', EMBEDDED_CONFIG, REQUESTS_DIR], process.cwd());
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.equal(out.stdout, `${count} passed, 0 failed\n`);
  });

  it('reads request tests that state their expectation, reason code included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-request-tests-'));
    const read = { attributes: { source: { principal: 'spiffe://example.org/ns/support/sa/support-agent' }, request: { http: { method: 'GET', path: '/tickets/T-1', host: 'tools.example.org' } } } };
    const refund = { attributes: { source: { principal: 'spiffe://example.org/ns/billing/sa/billing-agent' }, request: { http: { method: 'POST', path: '/cases/C-1/refunds', host: 'tools.example.org' } } } };
    writeFileSync(join(dir, 'read.json'), JSON.stringify({ description: 'support reads a ticket', expect: { decision: 'allow' }, request: read }));
    writeFileSync(join(dir, 'refund.json'), JSON.stringify({ description: 'a refund needs a task', expect: { decision: 'deny', code: 'task_required' }, request: refund }));
    writeFileSync(join(dir, 'refund-wrong-code.json'), JSON.stringify({ description: 'wrong code expected', expect: { decision: 'deny', code: 'policy_denied' }, request: refund }));
    writeFileSync(join(dir, 'notes.json'), JSON.stringify({ not: 'a test' }));
    const out = await mandateTest([dir], process.cwd());
    assert.equal(out.code, 1);
    assert.equal(out.stdout, `${join(dir, 'refund-wrong-code.json')}: wrong code expected: want deny (policy_denied), got deny (task_required)\n2 passed, 1 failed\n`);
  });

  it('refuses to pass with nothing to run, and names a file that is not a test', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-no-tests-'));
    writeFileSync(join(dir, 'notes.json'), '{"not": "a test"}');
    const empty = await mandateTest([dir], process.cwd());
    assert.equal(empty.code, 1);
    assert.equal(empty.stdout, '0 passed, 0 failed\n');
    assert.equal(empty.stderr, 'mandate test: no tests found\n');
    const named = await mandateTest([join(dir, 'notes.json')], process.cwd());
    assert.equal(named.code, 1);
    assert.match(named.stdout, /notes\.json: not a test/);
    const usage = await mandateTest([], process.cwd());
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /^mandate test: give at least one test file or folder\nusage:/);
  });
});
