// Reads a policy version from disk: *.cedar files, the schema and the static entities, all
// checked with cedar-wasm. Errors are `file:line: message`, one per problem. Nothing here runs
// per request; the result is immutable and handed to the engine whole.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { lineAt, readStrictJson } from '../json/strict.js';
import * as cedar from './cedar.js';
import { routeProblems, type RouteNeed } from './route-check.js';
import type { EntityJson, DetailedError } from './cedar.js';
import { FactsInterner, policyFacts, type PolicyFacts } from './facts.js';
import { compilePolicy, type Compiled } from './compiled/compile.js';

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
  /** The policy compiled to JavaScript (compiled/compile.ts), or why it stays on cedar-wasm. */
  readonly compiled: Compiled;
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
  /** A version with no policies denies everything: refused unless the config says it is meant. */
  readonly allowEmptyPolicies?: boolean;
  /** The HTTP routes, checked against the schema with every version (route-check.ts). */
  readonly routeNeeds?: readonly RouteNeed[];
  /** Evaluate compiled policies where proven (engine.ts); false keeps every request on cedar-wasm. Default true. */
  readonly compiled?: boolean;
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
  // A schema that does not parse is reported once, in its own file; entities are then checked
  // without it rather than blamed for the schema's error.
  let schemaParses = schemaText !== null;
  if (schemaText !== null && paths.schema !== null) {
    hash.update(`schema\0${schemaText}\0`);
    const parsed = cedar.checkParseSchema(schemaText);
    if (parsed.type === 'failure') {
      schemaParses = false;
      problems.push(...formatErrors(paths.schema, schemaText, 0, parsed.errors));
    }
  }

  const policies: PolicySource[] = [];
  const interner = new FactsInterner();
  for (const file of listPolicyFiles(paths.policies, problems)) {
    const text = readText(file, problems);
    if (text === null) continue;
    hash.update(`policy\0${basename(file)}\0${text}\0`);
    policies.push(...splitPolicies(file, text, problems, interner));
  }
  if (policies.length === 0 && problems.length === 0 && paths.allowEmptyPolicies !== true) {
    problems.push(`${paths.policies}: no policies were found, so every request would be denied (set allowEmptyPolicies: true if that is meant)`);
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
      entities = parseEntities(paths.entities, text, schemaParses ? schemaText : null, problems);
    }
  }

  if (problems.length === 0 && schemaText !== null && paths.schema !== null) {
    problems.push(...routeProblems(schemaText, paths.schema, paths.routeNeeds ?? []));
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

/**
 * The *.cedar files of the policy directory (not its subdirectories), symlinks followed: a
 * Kubernetes ConfigMap volume holds every file as a link into its `..data` directory, and an
 * operator may link a shared guardrails file in. A link that loops, dangles or leads outside the
 * directory is a problem with its path, never a file silently left out (a missing forbid is an
 * allow).
 */
export function listPolicyFiles(dir: string, problems: string[]): string[] {
  let entries: Dirent[];
  let root: string;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
    root = realpathSync(dir);
  } catch (err) {
    problems.push(`${dir}: cannot read the policy directory (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return [];
  }
  const files: string[] = [];
  for (const d of entries) {
    if (!d.name.endsWith('.cedar')) continue;
    const path = join(dir, d.name);
    if (d.isFile()) {
      files.push(path);
      continue;
    }
    if (!d.isSymbolicLink()) continue;
    let target: string;
    try {
      target = realpathSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${path}: ${code === 'ELOOP' ? 'symbolic link loop' : code === 'ENOENT' ? 'symbolic link to a file that does not exist' : `cannot follow the symbolic link (${code ?? String(err)})`}`);
      continue;
    }
    if (target !== root && !target.startsWith(root.endsWith(sep) ? root : root + sep)) {
      problems.push(`${path}: symbolic link to ${target}, outside the policy directory ${root}`);
      continue;
    }
    if (statSync(target).isFile()) files.push(path);
  }
  return files.sort();
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
    out.push({ id: annotations['id'] ?? `${basename(file)}:${first}`, text: part, file, line: first, annotations, facts: json.type === 'success' ? policyFacts(json.json, interner) : null, compiled: json.type === 'success' ? interner.compiled(compilePolicy(json.json, part)) : { reason: 'no JSON form' } });
  }
  return out;
}

function parseEntities(file: string, text: string, schemaText: string | null, problems: string[]): EntityJson[] {
  // Cedar longs are 64-bit and JSON.parse rounds beyond 2^53: such a number is refused with its
  // line rather than loaded as its neighbour (one reading, check/json.ts). Cedar reads names
  // case-sensitively, so only exact duplicate names are refused here.
  const read = readStrictJson(text, { maxDepth: 64, foldedDuplicates: false });
  if (!read.ok) {
    problems.push(`${file}:${lineAt(text, read.offset)}: ${read.kind === 'syntax' ? 'not valid JSON: ' : ''}${read.message}`);
    return [];
  }
  const entities: unknown = read.value;
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
