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
  /** Each tool's name and its compiled inputSchema. */
  readonly tools: ReadonlyMap<string, Schema>;
}

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
export function readToolList(value: JsonValue, source: string): Map<string, Schema> {
  let doc: JsonValue = value;
  if (isObject(doc) && isObject(doc['result'])) doc = doc['result'];
  if (!isObject(doc) || !Array.isArray(doc['tools'])) throw new ToolListError(`${source} is not a tools/list result: it needs a "tools" array`);
  const tools = new Map<string, Schema>();
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
      tools.set(name, compileSchema(input as JsonObject));
    } catch (err) {
      if (err instanceof SchemaError) throw new ToolListError(`${where} ("${name}") inputSchema ${err.message}`);
      throw err;
    }
  });
  return tools;
}
