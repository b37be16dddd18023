// Pinned tools of an MCP route (`tools:`): the tool list an operator saved from the server's
// tools/list answer. Mandate then refuses a tools/call of a tool not in it, and arguments that do
// not conform to the tool's inputSchema, before any policy reads them (docs/tool-calls.md,
// "Pinned tools"). What the server says about its tools later changes nothing here.

import { readFileSync } from 'node:fs';
import { compileSchema, SchemaError, type Schema } from '../json/schema.js';
import { readStrictJson, type JsonObject, type JsonValue } from '../json/strict.js';
import { ConfigError, isObject } from './fields.js';

export interface PinnedTools {
  /** The file the list came from, for messages. */
  readonly file: string;
  /** Each tool by its name. */
  readonly tools: ReadonlyMap<string, PinnedTool>;
}

export interface PinnedTool {
  /** Its inputSchema, compiled. */
  readonly schema: Schema;
  /** The arguments mirrored into Mcp-Param-{Name} headers (SEP-2243 `x-mcp-header`). */
  readonly mirrored: readonly MirroredParam[];
}

/** The JSON Schema types an `x-mcp-header` property may have (SEP-2243; number as some SDKs accept it). */
export type MirroredType = 'string' | 'integer' | 'boolean' | 'number';

export interface MirroredParam {
  /** The header's {Name}, lower case (header names are compared so). */
  readonly header: string;
  /** Where the argument is: its member names from the arguments object down. */
  readonly path: readonly string[];
  readonly type: MirroredType;
}

/** RFC 9110 token: what an x-mcp-header value must be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Schemas nested deeper than this are refused (a tool's arguments are bounded by limits.maxBodyDepth anyway). */
const MAX_SCHEMA_DEPTH = 64;

/**
 * Reads a tools/list result (`{"tools": [...]}`), or the whole JSON-RPC answer that carries one
 * (`{"jsonrpc": "2.0", "id": ..., "result": {"tools": [...]}}`); a paginated list is pinned by
 * putting every page's tools in one array.
 */
export function loadPinnedTools(file: string, field: string): PinnedTools {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(field, `cannot read the tool list ${file}: ${(err as Error).message}`);
  }
  // Names that differ only in case are two names to a schema (and to Cedar), not an ambiguity.
  const read = readStrictJson(text, { maxDepth: MAX_SCHEMA_DEPTH, foldedDuplicates: false });
  if (!read.ok) throw new ConfigError(field, `${file} is not JSON Mandate can read: ${read.message} (at offset ${read.offset})`);
  try {
    return { file, tools: readToolList(read.value, file) };
  } catch (err) {
    if (err instanceof ToolListError) throw new ConfigError(field, err.message);
    throw err;
  }
}

/** A tool list that cannot be pinned as it is; the message names the source, the tool and the keyword. */
export class ToolListError extends Error {}

/**
 * Each tool's name and compiled inputSchema, from a tools/list result or the JSON-RPC answer
 * that carries one; `source` names the document in messages (ToolListError).
 */
export function readToolList(value: JsonValue, source: string): Map<string, PinnedTool> {
  let doc: JsonValue = value;
  if (isObject(doc) && isObject(doc['result'])) doc = doc['result'];
  if (!isObject(doc) || !Array.isArray(doc['tools'])) throw new ToolListError(`${source} is not a tools/list result: it needs a "tools" array`);
  const tools = new Map<string, PinnedTool>();
  doc['tools'].forEach((tool: JsonValue, i: number) => {
    const where = `${source} tools[${i}]`;
    if (!isObject(tool)) throw new ToolListError(`${where} must be an object`);
    const name = tool['name'];
    if (typeof name !== 'string' || name === '') throw new ToolListError(`${where} needs a name`);
    if (tools.has(name)) throw new ToolListError(`${where}: the tool "${name}" is listed twice`);
    const input = tool['inputSchema'];
    // MCP: "inputSchema: a JSON Schema object defining the expected parameters for the tool",
    // whose type is "object" (arguments are an object).
    if (!isObject(input) || input['type'] !== 'object') throw new ToolListError(`${where} ("${name}") needs an inputSchema of type "object"`);
    try {
      tools.set(name, { schema: compileSchema(input as JsonObject), mirrored: mirroredParams(input as JsonObject, input as JsonObject) });
    } catch (err) {
      if (err instanceof SchemaError) throw new ToolListError(`${where} ("${name}") inputSchema ${err.message}`);
      throw err;
    }
  });
  return tools;
}

/**
 * The properties marked `x-mcp-header` (SEP-2243), at any depth of nested `properties` (through
 * local $refs), each with the rules a client also applies before it uses the tool: a token,
 * unique whatever its case, on a property of one primitive type (or that type or null).
 */
function mirroredParams(root: JsonObject, schema: JsonObject): MirroredParam[] {
  const out: MirroredParam[] = [];
  const seen = new Set<string>();
  const walk = (node: JsonValue, path: string[], where: string, depth: number): void => {
    if (!isObject(node) || depth > MAX_SCHEMA_DEPTH) return;
    const ref = node['$ref'];
    if (typeof ref === 'string' && (ref === '#' || ref.startsWith('#/')) && depth < MAX_SCHEMA_DEPTH) {
      let target: JsonValue | undefined = root;
      for (const part of ref === '#' ? [] : ref.slice(2).split('/')) target = isObject(target) ? target[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
      if (target !== undefined) walk(target, path, `${where}/$ref`, depth + 1);
    }
    const properties = node['properties'];
    if (!isObject(properties)) return;
    for (const [member, sub] of Object.entries(properties)) {
      const at = `${where}/properties/${member.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (isObject(sub) && sub['x-mcp-header'] !== undefined) {
        const header = sub['x-mcp-header'];
        if (typeof header !== 'string' || !TOKEN.test(header)) throw new SchemaError(`${at}/x-mcp-header`, 'must be an HTTP header name token (RFC 9110)');
        const lower = header.toLowerCase();
        if (seen.has(lower)) throw new SchemaError(`${at}/x-mcp-header`, `"${header}" names a header another property already mirrors`);
        seen.add(lower);
        out.push({ header: lower, path: [...path, member], type: primitiveType(sub, `${at}/x-mcp-header`) });
      }
      walk(sub, [...path, member], at, depth + 1);
    }
  };
  walk(schema, [], '', 0);
  return out;
}

function primitiveType(property: JsonObject, where: string): MirroredType {
  const t = property['type'];
  const types = (Array.isArray(t) ? t : [t]).filter((x) => x !== 'null');
  if (types.length === 1 && (types[0] === 'string' || types[0] === 'integer' || types[0] === 'boolean' || types[0] === 'number')) return types[0];
  throw new SchemaError(where, 'is only for a property of one type: string, integer, boolean or number');
}
