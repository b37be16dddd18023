// mandate replay --log FILE [--config FILE] [--json]: re-decides the requests of a decision log
// (those logged with their input: decisionLog.input: true) under the policies of another config,
// and prints what would change, per request and as a summary. Reads only; decides nothing live.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';
import { loadRuntimeForCommand } from './runtime.js';
import type { CedarRequest } from '../core/cedar-request.js';

interface LoggedLine {
  decisionId?: string;
  type?: string;
  action?: string | null;
  resource?: string | null;
  workload?: string | null;
  policyDecision?: 'allow' | 'deny' | null;
  determiningPolicies?: string[];
  policyVersion?: string;
  input?: CedarRequest;
}

export async function runReplay(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { log: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (values.log === undefined) {
    throw new UsageError('--log FILE is required');
  }
  const runtime = loadRuntimeForCommand(values.config ?? null, { mode: 'validate' });
  if (runtime === null) return 1;
  let text: string;
  try {
    text = readFileSync(values.log, 'utf8');
  } catch (err) {
    process.stderr.write(`mandate replay: cannot read ${values.log}: ${(err as Error).message}\n`);
    return 1;
  }
  const engine = runtime.store.current;
  const summary = { lines: 0, replayed: 0, withoutInput: 0, unchanged: 0, allowToDeny: 0, denyToAllow: 0, errors: 0, policyVersion: engine.version.version };
  const changes: Record<string, unknown>[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    summary.lines++;
    let line: LoggedLine;
    try {
      line = JSON.parse(raw) as LoggedLine;
    } catch {
      summary.errors++;
      continue;
    }
    if (line.type !== undefined) continue; // shadow disagreements and other records
    if (line.input === undefined || line.policyDecision == null) {
      summary.withoutInput++;
      continue;
    }
    summary.replayed++;
    const r = engine.evaluateCompiled(line.input) ?? engine.evaluate(line.input);
    if (!r.ok) {
      summary.errors++;
      changes.push({ decisionId: line.decisionId, before: line.policyDecision, after: 'error', error: r.message ?? r.code });
      continue;
    }
    if (r.value.decision === line.policyDecision) {
      summary.unchanged++;
      continue;
    }
    if (r.value.decision === 'deny') summary.allowToDeny++;
    else summary.denyToAllow++;
    changes.push({
      decisionId: line.decisionId,
      workload: line.workload,
      action: line.action,
      resource: line.resource,
      before: { decision: line.policyDecision, determiningPolicies: line.determiningPolicies ?? [], policyVersion: line.policyVersion },
      after: { decision: r.value.decision, determiningPolicies: r.value.determining, policyVersion: engine.version.version },
    });
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ summary, changes }, null, 2)}\n`);
  } else {
    for (const c of changes) process.stdout.write(`${JSON.stringify(c)}\n`);
    process.stdout.write(
      `replayed ${summary.replayed} of ${summary.lines} lines under ${summary.policyVersion}: ` +
        `${summary.unchanged} unchanged, ${summary.allowToDeny} allow->deny, ${summary.denyToAllow} deny->allow, ` +
        `${summary.withoutInput} without input, ${summary.errors} errors\n`,
    );
  }
  return 0;
}
