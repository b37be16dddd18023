import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Decision } from '../../src/check/pipeline.js';
import { DecisionLog } from '../../src/telemetry/decision-log.js';

function decision(n: number, allowed: boolean): Decision {
  return {
    decisionId: `id-${n}`,
    allowed,
    code: allowed ? null : 'policy_denied',
    message: null,
    identity: { kind: 'x509', spiffe: { id: 'spiffe://example.org/ns/a', trustDomain: 'example.org', path: '/ns/a' }, jwt: null },
    action: 'GET /tickets/{id}',
    resource: 'Ticket::"1"',
    determining: allowed ? ['support-read-tickets'] : ['no-agent-internal-tickets'],
    errors: [],
    policyVersion: 'sha256:0123456789abcdef',
    cedar: null,
    rpc: null,
    approval: null,
    taskId: null,
  };
}

describe('DecisionLog', () => {
  it('writes one JSON line per decision with the determining policies, to a 0600 file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(file, 1 << 20);
    log.record(decision(1, true), 120.4);
    log.record(decision(2, false), 98.6);
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.deepEqual(
      lines.map((l) => [l.decisionId, l.decision, l.code, l.workload, l.action, l.resource, l.determiningPolicies, l.latencyUs, l.policyVersion]),
      [
        ['id-1', 'allow', null, 'spiffe://example.org/ns/a', 'GET /tickets/{id}', 'Ticket::"1"', ['support-read-tickets'], 120, 'sha256:0123456789abcdef'],
        ['id-2', 'deny', 'policy_denied', 'spiffe://example.org/ns/a', 'GET /tickets/{id}', 'Ticket::"1"', ['no-agent-internal-tickets'], 99, 'sha256:0123456789abcdef'],
      ],
    );
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(log.stats, { written: 2, dropped: 0, failed: 0 });
  });

  it('drops and counts lines past its buffer instead of waiting for the sink', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mandate-log-')), 'decisions.jsonl');
    const log = DecisionLog.open(file, 4096);
    for (let i = 0; i < 1000; i++) log.record(decision(i, i % 2 === 0), 1);
    // Nothing was written yet: every record() returned at once, the overflow dropped.
    assert.ok(log.stats.dropped > 900, `dropped ${log.stats.dropped}`);
    await log.close();
    const written = readFileSync(file, 'utf8').trim().split('\n').length;
    assert.equal(written, log.stats.written);
    assert.equal(log.stats.written + log.stats.dropped, 1000);
  });
});
