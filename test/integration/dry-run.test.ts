// Dry run (config dryRun, issue #15 §4): every request is decided and recorded as usual but
// answered allowed, loudly: a warning at start, the would-be deny's code in a header and the
// CheckResponse metadata, "dryRun": true on decision-log lines, /v1/status and a gauge.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { respond, DRY_RUN_HEADER } from '../../src/check/respond.js';
import { makeDecision } from '../helpers/decisions.js';
import { exampleWith, spawnServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';
import { checkRequest } from '../helpers/requests.js';
import { codeOf } from '../helpers/task-fixture.js';

const SUPPORT = 'spiffe://example.org/ns/support/sa/support-agent';

describe('dry run', () => {
  it('answers a deny as an allow carrying the would-be code, and leaves allows and normal serving as they are', () => {
    const deny = makeDecision({ allowed: false, code: 'policy_denied', message: 'no' });
    const dry = respond(deny, { explain: false, principalHeader: 'x-mandate-principal', dryRun: true });
    assert.equal(dry.status.code, 0);
    assert.equal(dry.deniedResponse, undefined);
    assert.deepEqual(dry.okResponse?.headers.map((h) => [h.header.key, h.header.value]), [
      ['x-mandate-decision-id', deny.decisionId],
      [DRY_RUN_HEADER, 'policy_denied'],
      ['x-mandate-principal', 'spiffe://example.org/ns/a'],
    ]);
    assert.deepEqual(dry.dynamicMetadata.fields['decision'], { stringValue: 'deny' });
    assert.deepEqual(dry.dynamicMetadata.fields['dryRun'], { stringValue: 'true' });
    // Not in dry run: the same decision is a deny.
    assert.notEqual(respond(deny, { explain: false, principalHeader: null }).status.code, 0);
    // An allow in dry run has no dry-run header.
    const allow = respond(makeDecision(), { explain: false, principalHeader: null, dryRun: true });
    assert.deepEqual(allow.okResponse?.headers.map((h) => h.header.key), ['x-mandate-decision-id']);
  });

  it('serves every request allowed, logs the real decision with "dryRun": true, and says so in status and metrics', async () => {
    const { config } = exampleWith({ dryRun: 'dryRun: true\n' });
    const server = await spawnServer(['--config', config]);
    const client = createCheckClient(server.address);
    try {
      assert.match(server.stderr(), /"level":"warn","msg":"DRY RUN: every request is answered allowed/);
      const denied = await client.check(checkRequest('GET', '/tickets/internal-7', { principal: SUPPORT }));
      assert.equal(codeOf(denied), null, 'let through');
      const headers = (denied.okResponse?.headers ?? []).map((h) => [h.header?.key, h.header?.value]);
      assert.deepEqual(headers.find(([k]) => k === DRY_RUN_HEADER), [DRY_RUN_HEADER, 'policy_denied']);
      const allowed = await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT }));
      assert.equal(codeOf(allowed), null);
      const admin = /"admin":"([^"]+)"/.exec(server.stderr())?.[1] as string;
      const status = (await (await fetch(`http://${admin}/v1/status`)).json()) as Record<string, unknown>;
      assert.equal(status['dryRun'], true);
      const metrics = await (await fetch(`http://${admin}/metrics`)).text();
      assert.match(metrics, /^mandate_dry_run(\{[^}]*\})? 1$/m);
      // The decision log (stdout) has the real decisions.
      for (let i = 0; i < 50 && !server.stdout().includes('"decision":"allow"'); i++) await new Promise((r) => setTimeout(r, 20));
      const lines = server.stdout().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const deny = lines.find((l) => l['decision'] === 'deny');
      assert.equal(deny?.['code'], 'policy_denied');
      assert.equal(deny?.['dryRun'], true);
      assert.ok(lines.every((l) => l['dryRun'] === true));
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
