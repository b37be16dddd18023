// One Cedar integration-test case (the format of cedar-policy/cedar-integration-tests, described
// in ../shared/cedar-tests/README.md) decided by Mandate's evaluators: the compiled evaluator
// (compiled/) where the request is read with certainty and every policy compiled, cedar-wasm
// otherwise, as when serving. Each request's decision, determining policies and erroring
// policies are compared with the case's; `shouldValidate` with cedar-wasm's validator.
//
// Numbers are read exactly (json/exact.ts): a long beyond ±2^53 reaches the compiled evaluator
// as a bigint. cedar-wasm cannot take one (FACTS), so a request that holds one and is not on
// the compiled path is reported as not evaluated, never answered from a rounded value.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import * as cedar from './cedar.js';
import { holdsBigInt, parseExactJson } from '../json/exact.js';
import { compilePolicy } from './compiled/compile.js';
import { CompiledPolicySet, policyFunction, type CompiledPolicy } from './compiled/authorize.js';
import { readEntityList, readJsonValue } from './compiled/inputs.js';
import { SchemaReader } from './compiled/schema-reader.js';
import { Uid, type Entities, type Rec } from './compiled/values.js';

export interface CaseOutcome {
  /** Requests decided as the case expects. */
  readonly passed: number;
  /** One line per request (or per case-level problem) that did not. */
  readonly failures: readonly string[];
  /** Requests decided by the compiled evaluator (the rest by cedar-wasm). */
  readonly compiled: number;
  /**
   * Cases cedar-wasm validates that the case says should not validate: Cedar's validator
   * accepts more with each release (the shared corpus is Cedar 4.10's, Mandate runs cedar-wasm
   * 4.13's). Reported, not failed; the opposite (a case that should validate and does not) fails.
   */
  readonly validatorNewer: readonly string[];
}

interface CaseRequest {
  readonly description?: string;
  readonly principal: unknown;
  readonly action: unknown;
  readonly resource: unknown;
  readonly context?: unknown;
  readonly validateRequest?: boolean;
  readonly decision: string;
  readonly reason?: readonly string[];
  readonly errors?: readonly string[];
}

interface CaseFile {
  readonly policies: string;
  readonly entities: string;
  readonly schema?: string | null;
  readonly shouldValidate?: boolean;
  readonly requests: readonly CaseRequest[];
}

/** Whether a parsed JSON document is a Cedar integration-test case. */
export function isCedarCase(json: unknown): json is CaseFile {
  const o = json as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && typeof o['policies'] === 'string' && Array.isArray(o['requests']);
}

/** The file a case names: against the current directory first, then the folders above the case file. */
function locate(path: string, caseFile: string, cwd: string): string | null {
  if (isAbsolute(path)) return existsSync(path) ? path : null;
  const first = resolve(cwd, path);
  if (existsSync(first)) return first;
  for (let dir = dirname(resolve(cwd, caseFile)); ; dir = dirname(dir)) {
    const candidate = join(dir, path);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

type Answer = { decision: string; reason: string[]; errors: string[] } | { failure: string };

const show = (a: Answer): string => ('failure' in a ? `error (${a.failure})` : `${a.decision} reason=[${a.reason.join(',')}] errors=[${a.errors.join(',')}]`);

export function runCedarCase(file: string, text: string, cwd: string): CaseOutcome {
  const failures: string[] = [];
  const c = parseExactJson(text) as CaseFile;
  const fail = (what: string): CaseOutcome => ({ passed: 0, failures: c.requests.map((r) => `${file}: ${r.description ?? '(no description)'}: ${what}`), compiled: 0, validatorNewer: [] });
  const validatorNewer: string[] = [];
  const read = (path: string | null | undefined, what: string): string | null => {
    if (path === null || path === undefined) return null;
    const at = locate(path, file, cwd);
    if (at === null) throw new Error(`${what} file ${path} not found`);
    return readFileSync(at, 'utf8');
  };
  let policyText: string;
  let schemaText: string | null;
  let entityJson: unknown[];
  try {
    policyText = read(c.policies, 'policies') as string;
    schemaText = read(c.schema, 'schema');
    entityJson = parseExactJson(read(c.entities, 'entities') as string) as unknown[];
  } catch (err) {
    return fail((err as Error).message);
  }
  const parts = cedar.policySetTextToParts(policyText);
  if (parts.type !== 'success') return fail(`policies do not parse: ${parts.errors.map((e) => e.message).join('; ')}`);
  // Cedar names the policies of a file by position (PolicySet::from_str).
  const texts: Record<string, string> = {};
  const compiled: CompiledPolicy[] = [];
  let allCompiled = true;
  parts.policies.forEach((p, i) => {
    const id = `policy${i}`;
    texts[id] = p;
    const json = cedar.policyToJson(p);
    const out = json.type === 'success' ? compilePolicy(json.json, p) : { reason: 'no JSON form' };
    if ('shape' in out) compiled.push({ id, effect: out.shape.effect, fn: policyFunction(out.shape, out.constants) });
    else allCompiled = false;
  });
  const set = allCompiled ? new CompiledPolicySet(compiled) : null;

  if (c.shouldValidate !== undefined && schemaText !== null) {
    const v = cedar.validate({ schema: schemaText, policies: { staticPolicies: texts }, validationSettings: { mode: 'strict' } });
    const valid = v.type === 'success' && v.validationErrors.length === 0;
    if (valid && !c.shouldValidate) validatorNewer.push(file);
    else if (valid !== c.shouldValidate) {
      const why = v.type === 'failure' ? v.errors.map((e) => e.message).join('; ') : v.validationErrors.map((e) => `${e.policyId}: ${e.error.message}`).join('; ');
      failures.push(`${file}: shouldValidate: want ${String(c.shouldValidate)}, got ${String(valid)}${why === '' ? '' : ` (${why})`}`);
    }
  }

  const reader = schemaText === null ? null : SchemaReader.from(schemaText);
  let entities: Entities | null = null;
  if (set !== null) entities = schemaText === null ? readEntityList(entityJson) : (reader?.readEntities(entityJson) ?? null);
  const entitiesBig = holdsBigInt(entityJson);

  let passed = 0;
  let onCompiled = 0;
  for (const r of c.requests) {
    const want: Answer = { decision: r.decision, reason: [...(r.reason ?? [])].sort(), errors: [...(r.errors ?? [])].sort() };
    const context = r.context ?? {};
    let got: Answer | null = null;
    if (set !== null && entities !== null) {
      const input = compiledInput(r, context, reader);
      if (input !== null) {
        const a = set.authorize({ ...input, entities });
        got = { decision: a.decision, reason: [...a.determining].sort(), errors: a.errors.map((e) => e.policyId).sort() };
        onCompiled++;
      }
    }
    if (got === null) {
      if (entitiesBig || holdsBigInt(context)) {
        got = { failure: 'not evaluated: a value beyond ±2^53 outside the compiled path (cedar-wasm cannot take it exactly)' };
      } else {
        const answer = cedar.isAuthorized({
          principal: r.principal as cedar.EntityUidJson,
          action: r.action as cedar.EntityUidJson,
          resource: r.resource as cedar.EntityUidJson,
          context: context as cedar.Context,
          policies: { staticPolicies: texts },
          entities: entityJson as cedar.EntityJson[],
          ...(schemaText === null ? {} : { schema: schemaText, validateRequest: r.validateRequest !== false }),
        });
        got =
          answer.type === 'success'
            ? { decision: answer.response.decision, reason: [...answer.response.diagnostics.reason].sort(), errors: answer.response.diagnostics.errors.map((e) => e.policyId).sort() }
            : { failure: answer.errors.map((e) => e.message).join('; ') };
      }
    }
    if (show(got) === show(want)) passed++;
    else failures.push(`${file}: ${r.description ?? '(no description)'}: want ${show(want)}, got ${show(got)}`);
  }
  return { passed, failures, compiled: onCompiled, validatorNewer };
}

/** The request's uids and context for the compiled path, read by the schema when there is one; null when not certain. */
function compiledInput(r: CaseRequest, context: unknown, reader: SchemaReader | null): { principal: Uid; action: Uid; resource: Uid; context: Rec } | null {
  const principal = uid(r.principal);
  const action = uid(r.action);
  const resource = uid(r.resource);
  if (principal === null || action === null || resource === null) return null;
  let ctx: Rec | null;
  if (reader === null) {
    const v = readJsonValue(context);
    ctx = typeof v === 'object' && v !== null && !(v instanceof Uid) && !Array.isArray(v) ? (v as Rec) : null;
  } else {
    // Request validation (appliesTo) is Cedar's when asked; the context is read by the schema either way.
    if (r.validateRequest !== false && !reader.appliesTo(principal, action, resource)) return null;
    ctx = reader.readContext(action, context);
  }
  return ctx === null ? null : { principal, action, resource, context: ctx };
}

function uid(u: unknown): Uid | null {
  const v = readJsonValue(typeof u === 'object' && u !== null && !('__entity' in u) ? { __entity: u } : u);
  return v instanceof Uid ? v : null;
}
