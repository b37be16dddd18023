// Rolling out a policy change: a shadow set decided beside the enforced one (its answer never
// used, its disagreements logged), and `mandate replay` of a decision log under the candidate.

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { exampleWith, runCli, spawnServer } from '../helpers/server.js';
import { createCheckClient } from '../helpers/upstream.js';

describe('shadow policies and replay', () => {
  it('logs a shadow disagreement without changing the answer, and replay shows the same change', async () => {
    const { dir, config } = exampleWith({ decisionLog: 'decisionLog:\n  sink: ./decisions.jsonl\n  input: true\n', shadowPolicies: 'shadowPolicies: ./candidate\n' });
    // The candidate drops the guardrail that keeps agents out of internal tickets.
    mkdirSync(join(dir, 'candidate'));
    cpSync(join(dir, 'policies'), join(dir, 'candidate'), { recursive: true });
    rmSync(join(dir, 'candidate', 'guardrails.cedar'));
    const server = await spawnServer(['--config', config]);
    const client = createCheckClient(server.address);
    try {
      const internal = await client.check(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT }));
      assert.equal(internal.status?.code, 7, 'the enforced set decides: denied');
      assert.equal((await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }))).status?.code ?? 0, 0);
      assert.equal((await client.check(checkRequest('GET', '/prod-db/x', { principal: SUPPORT_AGENT }))).status?.code, 7);
      await sleep(200);
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0);
    }
    const lines = readFileSync(join(dir, 'decisions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { enforced: { determiningPolicies: string[]; decision: string }; shadow: { decision: string } });
    const disagreements = lines.filter((l) => l['type'] === 'shadow-disagreement');
    assert.equal(disagreements.length, 1);
    assert.equal(disagreements[0]?.['action'], 'GET /tickets/{id}');
    assert.deepEqual(disagreements[0]?.['enforced'].determiningPolicies, ['no-agent-internal-tickets']);
    assert.equal(disagreements[0]?.['enforced'].decision, 'deny');
    assert.equal(disagreements[0]?.['shadow'].decision, 'allow');
    assert.equal(lines.filter((l) => l['type'] === undefined).length, 3, 'one line per decision');
    assert.ok(lines.filter((l) => l['type'] === undefined && l['code'] !== 'no_route').every((l) => l['input'] !== undefined), 'decided requests carry their input');

    // Replay the log under a config whose policies are the candidate's.
    const candidateConfig = exampleWith({ decisionLog: 'decisionLog:\n  sink: "off"\n' }).config;
    rmSync(join(candidateConfig, '..', 'policies', 'guardrails.cedar'));
    const replay = await runCli(['replay', '--log', join(dir, 'decisions.jsonl'), '--config', candidateConfig, '--json']);
    assert.equal(replay.code, 0, replay.stderr);
    const out = JSON.parse(replay.stdout) as { summary: Record<string, number>; changes: { action: string; before: { decision: string }; after: { decision: string } }[] };
    assert.equal(out.summary['replayed'], 2);
    assert.equal(out.summary['withoutInput'], 1, 'the no_route request never reached policy');
    assert.equal(out.summary['denyToAllow'], 1);
    assert.equal(out.summary['unchanged'], 1);
    assert.deepEqual(out.changes.map((c) => [c.action, c.before.decision, c.after.decision]), [['GET /tickets/{id}', 'deny', 'allow']]);
    const text = await runCli(['replay', '--log', join(dir, 'decisions.jsonl'), '--config', candidateConfig]);
    assert.match(text.stdout, /replayed 2 of 4 lines under sha256:[0-9a-f]{16}: 1 unchanged, 0 allow->deny, 1 deny->allow, 1 without input, 0 errors/);
  });
});
