// Reads a policy version from disk: *.cedar files, the schema and the static entities, all
// checked with cedar-wasm. Errors are `file:line: message`, one per problem. Nothing here runs
// per request; the result is immutable and handed to the engine whole.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as cedar from './cedar.js';
import type { EntityJson, DetailedError } from './cedar.js';
import { FactsInterner, policyFacts, type PolicyFacts } from './facts.js';

export interface PolicySource {
  /** @id("...") annotation, or "<file>:<line>" of the policy's first line. */
  readonly id: string;
  readonly text: string;
  readonly file: string;
  readonly line: number;
  /** Cedar annotations, e.g. @approval("required") makes a deny answer approval_required. */
  readonly annotations: Readonly<Record<string, string>>;
  /** What the load-time analyses need, read once here from cedar-wasm's JSON form (~0.5 ms per policy); null if it had none. */
  readonly facts: PolicyFacts | null;
}

export interface PolicyVersion {
  /** Content hash of everything loaded: the same files give the same version on every replica. */
  readonly version: string;
  readonly policies: readonly PolicySource[];
  readonly schemaText: string | null;
  readonly entities: readonly EntityJson[];
  readonly loadedAt: Date;
}

export interface PolicyPaths {
  readonly policies: string;
  readonly schema: string | null;
  readonly entities: string | null;
}

export class PolicyLoadError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'PolicyLoadError';
  }
}

export function loadPolicyVersion(paths: PolicyPaths): PolicyVersion {
  const hash = createHash('sha256');
  const problems: string[] = [];

  const schemaText = paths.schema === null ? null : readText(paths.schema, problems);
  if (schemaText !== null && paths.schema !== null) {
    hash.update(`schema\0${schemaText}\0`);
    const parsed = cedar.checkParseSchema(schemaText);
    if (parsed.type === 'failure') problems.push(...formatErrors(paths.schema, schemaText, 0, parsed.errors));
  }

  const policies: PolicySource[] = [];
  const interner = new FactsInterner();
  for (const file of listPolicyFiles(paths.policies, problems)) {
    const text = readText(file, problems);
    if (text === null) continue;
    hash.update(`policy\0${basename(file)}\0${text}\0`);
    policies.push(...splitPolicies(file, text, problems, interner));
  }
  const seen = new Map<string, PolicySource>();
  for (const p of policies) {
    const first = seen.get(p.id);
    if (first !== undefined) problems.push(`${p.file}:${p.line}: policy id "${p.id}" is already used at ${first.file}:${first.line}`);
    seen.set(p.id, p);
  }

  let entities: EntityJson[] = [];
  if (paths.entities !== null) {
    const text = readText(paths.entities, problems);
    if (text !== null) {
      hash.update(`entities\0${text}\0`);
      entities = parseEntities(paths.entities, text, schemaText, problems);
    }
  }

  if (problems.length === 0 && schemaText !== null) {
    const answer = cedar.validate({
      schema: schemaText,
      policies: { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) },
      validationSettings: { mode: 'strict' },
    });
    if (answer.type === 'failure') {
      problems.push(...formatErrors(paths.schema ?? 'schema', schemaText, 0, answer.errors));
    } else {
      for (const v of answer.validationErrors) {
        const source = seen.get(v.policyId);
        if (source === undefined) problems.push(`${v.policyId}: ${describe(v.error)}`);
        else problems.push(...formatErrors(source.file, source.text, source.line - 1, [v.error]));
      }
    }
  }

  if (problems.length > 0) throw new PolicyLoadError(problems);
  return Object.freeze({
    version: `sha256:${hash.digest('hex').slice(0, 16)}`,
    policies: Object.freeze(policies),
    schemaText,
    entities: Object.freeze(entities),
    loadedAt: new Date(),
  });
}

export function listPolicyFiles(dir: string, problems: string[]): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isFile() && d.name.endsWith('.cedar'))
      .map((d) => join(dir, d.name))
      .sort();
  } catch (err) {
    problems.push(`${dir}: cannot read the policy directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return [];
  }
}

function readText(file: string, problems: string[]): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return null;
  }
}

function splitPolicies(file: string, text: string, problems: string[], interner: FactsInterner): PolicySource[] {
  const parsed = cedar.checkParsePolicySet({ staticPolicies: text });
  if (parsed.type === 'failure') {
    problems.push(...formatErrors(file, text, 0, parsed.errors));
    return [];
  }
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === 'failure') {
    problems.push(...formatErrors(file, text, 0, parts.errors));
    return [];
  }
  if (parts.policy_templates.length > 0) {
    problems.push(`${file}:1: policy templates (?principal, ?resource) are not supported; write static policies`);
  }
  const out: PolicySource[] = [];
  let cursor = 0;
  // `line` is the line at `cursor`, counted on from the previous part (counting from the start
  // each time made a 10,000-policy file take minutes to load).
  let line = 1;
  for (const part of parts.policies) {
    // Parts are verbatim slices of the file; locate each to report its line.
    const at = text.indexOf(part, cursor);
    const offset = at >= 0 ? at : cursor;
    line += linesBetween(text, cursor, offset);
    const first = line;
    if (at >= 0) {
      cursor = at + part.length;
      line += linesBetween(text, at, cursor);
    }
    const json = cedar.policyToJson(part);
    const annotations = json.type === 'success' ? (json.json.annotations ?? {}) : {};
    out.push({ id: annotations['id'] ?? `${basename(file)}:${first}`, text: part, file, line: first, annotations, facts: json.type === 'success' ? policyFacts(json.json, interner) : null });
  }
  return out;
}

function parseEntities(file: string, text: string, schemaText: string | null, problems: string[]): EntityJson[] {
  let entities: unknown;
  try {
    entities = JSON.parse(text);
  } catch (err) {
    problems.push(`${file}:1: not valid JSON: ${(err as Error).message}`);
    return [];
  }
  if (!Array.isArray(entities)) {
    problems.push(`${file}:1: must be a JSON array of Cedar entities ({"uid", "attrs", "parents"})`);
    return [];
  }
  const checked = cedar.checkParseEntities({ entities: entities as EntityJson[], schema: schemaText });
  if (checked.type === 'failure') {
    problems.push(...checked.errors.map((e) => `${file}:1: ${describe(e)}`));
    return [];
  }
  return entities as EntityJson[];
}

/** Cedar reports source offsets (UTF-8 bytes) into the text it was given. */
function formatErrors(file: string, text: string, lineBase: number, errors: readonly DetailedError[]): string[] {
  const bytes = Buffer.from(text, 'utf8');
  return errors.map((e) => {
    const start = e.sourceLocations?.[0]?.start;
    const line = start === undefined ? 1 : lineOf(bytes.subarray(0, start).toString('utf8'), Infinity);
    return `${file}:${lineBase + line}: ${describe(e)}`;
  });
}

function linesBetween(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function describe(error: DetailedError): string {
  return error.help ? `${error.message} (${error.help})` : error.message;
}
