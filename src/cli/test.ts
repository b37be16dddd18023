// mandate test PATH...: a policy test runner (what `opa test` is to OPA), on the evaluation
// path that serves. Files and folders (recursively, *.json) hold either
//   - Cedar integration-test cases (policy/cedar-case.ts): each request's decision, determining
//     and erroring policies against the case's; or
//   - Mandate request tests: a CheckRequest (proto3 JSON) named allow-*.json or deny-*.json, or
//     {"description"?, "expect": {"decision": "allow"|"deny", "code"?: REASON}, "request": CheckRequest},
//     decided through the whole pipeline against --config (the embedded example without it).
// Output: one line per failing request (file, description, want, got), then `N passed, M failed`
// alone on the last line, counted in requests. Exit 0 when none failed, 1 otherwise.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';
import { isCedarCase, runCedarCase } from '../policy/cedar-case.js';
import { decide } from '../check/pipeline.js';
import type { CheckRequestMessage } from '../check/decode.js';
import { decodeCheckRequestBytes, encodeCheckRequest } from '../server/protos.js';
import { loadRuntimeForCommand, type Runtime } from './runtime.js';
import { getCedarVersion } from '../policy/cedar.js';

const cedarVersion = (): string => getCedarVersion();

export async function runTest(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' }, verbose: { type: 'boolean', default: false } }, strict: true });
  if (positionals.length === 0) throw new UsageError('give at least one test file or folder');
  const files = positionals.flatMap((p) => testFiles(p, true));
  let passed = 0;
  let failed = 0;
  let compiled = 0;
  const validatorNewer: string[] = [];
  let runtime: Runtime | null | undefined;
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  for (const { path, explicit } of files) {
    let text: string;
    let json: unknown;
    try {
      text = readFileSync(path, 'utf8');
      json = JSON.parse(text);
    } catch (err) {
      out(`${path}: cannot read: ${(err as Error).message}`);
      failed++;
      continue;
    }
    if (isCedarCase(json)) {
      const r = runCedarCase(path, text, process.cwd());
      passed += r.passed;
      compiled += r.compiled;
      validatorNewer.push(...r.validatorNewer);
      failed += r.failures.length;
      for (const f of r.failures) out(f);
      continue;
    }
    const test = requestTest(path, json);
    if (test === null) {
      if (explicit) {
        out(`${path}: not a test (a Cedar test case, a CheckRequest named allow-*/deny-*, or {"expect", "request"})`);
        failed++;
      }
      continue;
    }
    if (runtime === undefined) {
      runtime = loadRuntimeForCommand(values.config ?? null);
      await runtime?.bundles.start();
    }
    if (runtime === null) return 1;
    let message: CheckRequestMessage;
    try {
      message = decodeCheckRequestBytes(encodeCheckRequest(test.request)) as CheckRequestMessage;
    } catch (err) {
      out(`${path}: ${test.description}: not a CheckRequest in proto3 JSON form: ${(err as Error).message}`);
      failed++;
      continue;
    }
    const decision = await decide(message, runtime.state());
    const got = `${decision.allowed ? 'allow' : 'deny'}${decision.code === null ? '' : ` (${decision.code})`}`;
    const ok = (decision.allowed ? 'allow' : 'deny') === test.decision && (test.code === undefined || test.code === decision.code);
    if (ok) passed++;
    else {
      failed++;
      out(`${path}: ${test.description}: want ${test.decision}${test.code === undefined ? '' : ` (${test.code})`}, got ${got}`);
    }
  }
  runtime?.bundles.stop();
  if (values.verbose === true) process.stderr.write(`${compiled} Cedar requests decided by the compiled evaluator\n`);
  if (validatorNewer.length > 0) {
    process.stderr.write(`note: ${validatorNewer.length} case(s) marked shouldValidate: false validate with cedar-wasm ${cedarVersion()} (Cedar's validator accepts more in newer releases; not counted as failures): ${validatorNewer.join(', ')}\n`);
  }
  if (passed + failed === 0) {
    process.stderr.write('mandate test: no tests found\n');
    out('0 passed, 0 failed');
    return 1;
  }
  out(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

interface RequestTest {
  readonly description: string;
  readonly decision: 'allow' | 'deny';
  readonly code?: string;
  readonly request: unknown;
}

function requestTest(path: string, json: unknown): RequestTest | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const o = json as Record<string, unknown>;
  const expect = o['expect'] as { decision?: unknown; code?: unknown } | undefined;
  if (expect !== undefined && o['request'] !== undefined) {
    if (expect.decision !== 'allow' && expect.decision !== 'deny') return null;
    return {
      description: typeof o['description'] === 'string' ? o['description'] : basename(path),
      decision: expect.decision,
      ...(typeof expect.code === 'string' ? { code: expect.code } : {}),
      request: o['request'],
    };
  }
  const name = basename(path);
  const decision = name.startsWith('allow-') ? 'allow' : name.startsWith('deny-') ? 'deny' : null;
  if (decision === null) return null;
  return { description: name, decision, request: json };
}

/** A file as given; a folder's *.json files, recursively, sorted (entity files of Cedar cases left out). */
function testFiles(path: string, explicit: boolean): { path: string; explicit: boolean }[] {
  if (!statSync(path).isDirectory()) return [{ path, explicit }];
  return readdirSync(path, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((d) => (d.isDirectory() ? testFiles(join(path, d.name), false) : d.name.endsWith('.json') && !d.name.endsWith('.entities.json') ? [{ path: join(path, d.name), explicit: false }] : []));
}
