// Which decisions depend on what recorded calls change (src/policy/history-reads.ts): those are
// recorded by compare-and-record one at a time per task; the others in parallel.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRuntime } from '../../src/cli/runtime.js';
import { EMBEDDED_CONFIG } from '../../src/config/load.js';
import { HistoryDependence } from '../../src/policy/history-reads.js';
import { loadPolicyVersion } from '../../src/policy/loader.js';

const when = (cond: string): string => `permit (principal, action == Action::"a", resource) when { ${cond} };`;

function dependence(policy: string): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'mandate-history-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'p.cedar'), policy);
  const version = loadPolicyVersion({ policies: join(dir, 'policies'), schema: null, entities: null });
  return new HistoryDependence(version, null, null).dependsOnHistory('a');
}

describe('history dependence', () => {
  const table: [string, string, boolean][] = [
    ['no condition', 'permit (principal, action, resource);', false],
    ['the granted tools (fixed at StartTask)', when('context has task && context.task.tools.contains("x")'), false],
    ['the approvals', when('context has task && context.task.approved.contains("x")'), false],
    ['the call count', when('context.task.calls < 10'), true],
    ['the history', when('context.task.history.labels.contains("pii")'), true],
    ['a per-tool count', when('context.task.history.toolCalls >= 20'), true],
    ['the workload\'s history', when('context has workload && context.workload.history.egress'), true],
    ['the whole task', when('context.task == {}'), true],
    ['the whole context', when('context == {}'), true],
  ];
  for (const [what, policy, expected] of table) {
    it(`${expected ? 'depends' : 'does not depend'} on recorded calls when a policy reads ${what}`, () => {
      assert.equal(dependence(policy), expected);
    });
  }

  it('tells the example\'s actions apart: ticket reads do not depend, MCP tool calls do', () => {
    const engine = loadRuntime(EMBEDDED_CONFIG).state().engine;
    assert.equal(engine.history.dependsOnHistory('GET /tickets/{id}'), false);
    assert.equal(engine.history.dependsOnHistory('mcp:tools/call'), true);
  });
});
