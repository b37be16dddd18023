// mandate tools pin: asks an MCP server for its tools (tools/list, every page) and writes the
// list that an MCP route pins with `tools: FILE` (docs/tool-calls.md, "Pinned tools"), after
// checking that Mandate can enforce every inputSchema in it. Review the file, commit it, and
// the server's later changes to its tools change nothing until it is pinned again.
// mandate tools diff: what the server lists now against the pinned file (exit 2 when they
// differ): a tool added, dropped, or whose schema or description changed since review.
//
// Streamable HTTP: revision 2026-07-28 takes tools/list on its own (MCP-Protocol-Version and
// Mcp-Method headers, no session); older revisions need initialize first, then the session id
// the server gave (Mcp-Session-Id) on every request, and a DELETE to end the session. Without
// --protocol-version, 2026-07-28 is tried first and the older handshake when the server refuses it.
// Answers come as JSON or as a server-sent event stream. Header values (--header) are sent, never printed.

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readToolList, ToolListError } from '../config/tools.js';
import { jsonEqual } from '../json/schema.js';
import { readStrictJson, type JsonObject, type JsonValue } from '../json/strict.js';
import { UsageError } from './usage.js';

const LATEST = '2026-07-28';
/** What an older server is offered in initialize. */
const LEGACY = '2025-11-25';
const TIMEOUT_MS = 10_000;
const MAX_PAGES = 1000;
const MAX_DEPTH = 64;

/** The server said no, or said something that is not an MCP answer: one line for the user. */
class McpClientError extends Error {
  constructor(
    message: string,
    /** An HTTP 4xx or a JSON-RPC error: a server that may take the older handshake. */
    readonly refused = false,
  ) {
    super(message);
  }
}

export async function runTools(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'pin' && sub !== 'diff') throw new UsageError(sub === undefined ? 'a subcommand is needed: pin or diff' : `unknown subcommand "${sub}"`);
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      url: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      'protocol-version': { type: 'string' },
      out: { type: 'string' },
      pinned: { type: 'string' },
    },
  });
  if (values.url === undefined) throw new UsageError('--url is required');
  if (sub === 'diff' && values.pinned === undefined) throw new UsageError('diff needs --pinned FILE');
  if (sub === 'pin' && values.pinned !== undefined) throw new UsageError('--pinned is for diff');
  if (sub === 'diff' && values.out !== undefined) throw new UsageError('--out is for pin');
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new UsageError(`--url ${JSON.stringify(values.url)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must be http: or https:');
  const headers: Record<string, string> = {};
  for (const h of values.header as string[]) {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new UsageError('--header takes "Name: value"');
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  const where = url.origin + url.pathname; // no query: it may carry a key

  let pinned: JsonValue[] | null = null;
  if (sub === 'diff') {
    const file = values.pinned as string;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      process.stderr.write(`mandate tools diff: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
      return 1;
    }
    const read = readStrictJson(text, { maxDepth: MAX_DEPTH, foldedDuplicates: false });
    let doc: JsonValue = read.ok ? read.value : null;
    if (isObject(doc) && isObject(doc['result'])) doc = doc['result'];
    if (!isObject(doc) || !Array.isArray(doc['tools'])) {
      process.stderr.write(`mandate tools diff: ${file} is not a tools/list result${read.ok ? '' : ` (${read.message})`}\n`);
      return 1;
    }
    pinned = doc['tools'];
  }

  let listed: { tools: JsonValue[]; revision: string };
  try {
    const asked = values['protocol-version'];
    if (asked !== undefined) listed = asked >= LATEST ? await listTools(url, headers, asked, null) : await withSession(url, headers, asked);
    else {
      try {
        listed = await listTools(url, headers, LATEST, null);
      } catch (err) {
        if (!(err instanceof McpClientError) || !err.refused) throw err;
        listed = await withSession(url, headers, LEGACY);
      }
    }
  } catch (err) {
    if (err instanceof McpClientError) {
      process.stderr.write(`mandate tools ${sub}: ${where}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  if (pinned !== null) {
    const changes = toolChanges(pinned, listed.tools);
    for (const line of changes) process.stdout.write(`${line}\n`);
    if (changes.length === 0) process.stderr.write(`the ${listed.tools.length} tools of ${where} are the pinned ones\n`);
    return changes.length === 0 ? 0 : 2;
  }

  const doc = { tools: listed.tools };
  try {
    readToolList(doc as JsonObject, where);
  } catch (err) {
    if (!(err instanceof ToolListError)) throw err;
    process.stderr.write(`mandate tools pin: the list cannot be pinned as it is: ${err.message}\n`);
    return 1;
  }
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (values.out === undefined) process.stdout.write(text);
  else {
    writeFileSync(values.out, text);
    process.stderr.write(`pinned ${listed.tools.length} tools of ${where} (MCP ${listed.revision}) in ${values.out}\n`);
  }
  return 0;
}

/**
 * What differs between the pinned tools and the listed ones, one line each, by tool name:
 * "+ NAME" listed and not pinned, "- NAME" pinned and no longer listed, "~ NAME: FIELD changed"
 * for each top-level field of a tool (inputSchema, description, annotations, ...) that differs.
 * A description is what the agent's model reads: a change there after review matters as much
 * as one in the schema. Order does not count; an entry without a string name is reported as such.
 */
export function toolChanges(pinned: readonly JsonValue[], listed: readonly JsonValue[]): string[] {
  const byName = (tools: readonly JsonValue[], side: string, out: string[]): Map<string, JsonObject> => {
    const m = new Map<string, JsonObject>();
    tools.forEach((t, i) => {
      if (!isObject(t) || typeof t['name'] !== 'string') out.push(`? ${side} tools[${i}] has no name`);
      else m.set(t['name'], t);
    });
    return m;
  };
  const out: string[] = [];
  const before = byName(pinned, 'pinned', out);
  const after = byName(listed, 'listed', out);
  for (const [name, tool] of after) {
    const was = before.get(name);
    if (was === undefined) {
      out.push(`+ ${name}`);
      continue;
    }
    const fields = [...new Set([...Object.keys(was), ...Object.keys(tool)])].sort();
    for (const f of fields) if (!jsonEqual(was[f] ?? null, tool[f] ?? null) || Object.hasOwn(was, f) !== Object.hasOwn(tool, f)) out.push(`~ ${name}: ${f} changed`);
  }
  for (const name of before.keys()) if (!after.has(name)) out.push(`- ${name}`);
  return out;
}

/** The older handshake: initialize, notifications/initialized, tools/list in the session, DELETE. */
async function withSession(url: URL, headers: Record<string, string>, offered: string): Promise<{ tools: JsonValue[]; revision: string }> {
  const init = await rpc(url, headers, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: offered, capabilities: {}, clientInfo: { name: 'mandate-tools-pin', version: '1' } } }, null);
  const version = isObject(init.result) && typeof init.result['protocolVersion'] === 'string' ? init.result['protocolVersion'] : offered;
  const session = init.session;
  const sessionHeaders = { ...headers, 'mcp-protocol-version': version, ...(session === null ? {} : { 'mcp-session-id': session }) };
  await notify(url, sessionHeaders, { jsonrpc: '2.0', method: 'notifications/initialized' });
  try {
    return await listTools(url, sessionHeaders, version, session);
  } finally {
    if (session !== null) await fetch(url, { method: 'DELETE', headers: sessionHeaders, signal: AbortSignal.timeout(TIMEOUT_MS) }).then((r) => r.body?.cancel(), () => undefined);
  }
}

async function listTools(url: URL, headers: Record<string, string>, revision: string, session: string | null): Promise<{ tools: JsonValue[]; revision: string }> {
  const tools: JsonValue[] = [];
  const seen = new Set<string>();
  let cursor: string | null = null;
  for (let page = 1; ; page++) {
    if (page > MAX_PAGES) throw new McpClientError(`tools/list went on past ${MAX_PAGES} pages`);
    const params: JsonObject = cursor === null ? {} : { cursor };
    const pageHeaders = session === null ? { ...headers, 'mcp-protocol-version': revision, 'mcp-method': 'tools/list' } : headers;
    const answer = await rpc(url, pageHeaders, { jsonrpc: '2.0', id: page, method: 'tools/list', params }, session);
    const result = answer.result;
    if (!isObject(result) || !Array.isArray(result['tools'])) throw new McpClientError('the tools/list answer has no "tools" array');
    tools.push(...result['tools']);
    const next = result['nextCursor'];
    if (next === undefined || next === null || next === '') return { tools, revision };
    if (typeof next !== 'string') throw new McpClientError('tools/list answered a nextCursor that is not a string');
    if (seen.has(next)) throw new McpClientError('tools/list answered a cursor it had answered before (the pages would go round for ever)');
    seen.add(next);
    cursor = next;
  }
}

/** One JSON-RPC request and its answer (JSON, or the matching message of an event stream). */
async function rpc(url: URL, headers: Record<string, string>, message: { id: number; method: string } & JsonObject, session: string | null): Promise<{ result: JsonValue; session: string | null }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(message),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (err) {
    throw new McpClientError(`${message.method}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new McpClientError(`${message.method}: HTTP ${res.status}`, res.status >= 400 && res.status < 500);
  const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  const messages = type === 'text/event-stream' ? eventData(text) : [text];
  for (const data of messages) {
    const read = readStrictJson(data, { maxDepth: MAX_DEPTH, foldedDuplicates: false });
    if (!read.ok) throw new McpClientError(`${message.method}: the answer is not JSON Mandate can read: ${read.message}`);
    const m = read.value;
    if (!isObject(m) || m['id'] !== message.id) continue; // the server's own requests and notifications
    if (isObject(m['error'])) throw new McpClientError(`${message.method}: JSON-RPC error ${String(m['error']['code'])}: ${String(m['error']['message']).slice(0, 200)}`, true);
    if (!('result' in m)) throw new McpClientError(`${message.method}: the answer has neither a result nor an error`);
    return { result: m['result'] as JsonValue, session: res.headers.get('mcp-session-id') ?? session };
  }
  throw new McpClientError(`${message.method}: no answer for request ${message.id} (content-type ${type || 'none'})`);
}

async function notify(url: URL, headers: Record<string, string>, message: JsonObject): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(message), signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    throw new McpClientError(`${String(message['method'])}: ${(err as Error).message}`);
  }
  await res.body?.cancel();
  if (!res.ok) throw new McpClientError(`${String(message['method'])}: HTTP ${res.status}`);
}

/** The data of each event of a text/event-stream (its data: lines joined by newlines). */
export function eventData(stream: string): string[] {
  const out: string[] = [];
  for (const event of stream.split(/\r\n\r\n|\n\n|\r\r/)) {
    const data = event
      .split(/\r\n|\n|\r/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
    if (data.length > 0) out.push(data.join('\n'));
  }
  return out;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
