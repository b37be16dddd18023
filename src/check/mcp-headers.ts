// The values MCP mirrors from a JSON-RPC body into HTTP headers (SEP-2243, revision
// 2026-07-28), as a server that reads the body compares them: Mcp-Name, and the Mcp-Param-{Name}
// headers of tool arguments whose inputSchema property carries `x-mcp-header: Name`. A value that
// is not plain printable ASCII, has surrounding whitespace, or looks like the sentinel itself is
// sent as `=?base64?{Base64 of its UTF-8}?=` (markers case-sensitive). Intermediaries route and
// rate-limit on these headers without reading the body: one that disagrees with the body makes
// them act on another call than the one decided, so a mismatch is refused (-32020).

import type { MirroredType, PinnedTool } from '../config/tools.js';
import type { JsonObject, JsonValue } from '../json/strict.js';

const SENTINEL_START = '=?base64?';
const SENTINEL_END = '?=';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A mirrored header's value: the sentinel decoded, else the value as it is; null when the sentinel holds no valid Base64 of UTF-8. */
export function decodeMirrored(raw: string): string | null {
  if (!(raw.startsWith(SENTINEL_START) && raw.endsWith(SENTINEL_END) && raw.length >= SENTINEL_START.length + SENTINEL_END.length)) return raw;
  const inner = raw.slice(SENTINEL_START.length, raw.length - SENTINEL_END.length);
  if (!BASE64.test(inner)) return null;
  try {
    return UTF8.decode(Buffer.from(inner, 'base64'));
  } catch {
    return null;
  }
}


/**
 * Whether a Mcp-Param header (its decoded value) says the same as the argument: a string as it
 * is, an integer or a number compared as numbers (within 1e-9 relative, as SEP-2243 advises),
 * a boolean as `true` or `false`. An argument of another JSON type than the declared one never
 * matches (a pinned inputSchema has refused it before).
 */
export function mirrorsArgument(header: string, value: JsonValue, type: MirroredType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string' && header === value;
    case 'boolean':
      return typeof value === 'boolean' && header === String(value);
    default: {
      if (typeof value !== 'number' || !/^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/.test(header)) return false;
      if (type === 'integer' && !/^-?(?:0|[1-9][0-9]*)$/.test(header)) return false;
      const h = Number(header);
      return Number.isFinite(h) && Math.abs(h - value) <= 1e-9 * Math.max(1, Math.abs(value));
    }
  }
}

const PARAM_PREFIX = 'mcp-param-';

/**
 * Why the Mcp-Param headers of a pinned tool's call disagree with its arguments, or null. Each
 * such header must name an argument the tool's inputSchema mirrors (x-mcp-header) and carry its
 * value; an argument that is absent or null has no header. A mirrored argument sent without
 * its header is let through: intermediaries then have no value to act on, and the body is what
 * was decided.
 */
export function mirroredMismatch(tool: PinnedTool, args: JsonObject, headers: ReadonlyMap<string, string>): string | null {
  for (const [name, raw] of headers) {
    if (!name.startsWith(PARAM_PREFIX)) continue;
    const header = name.slice(PARAM_PREFIX.length);
    const param = tool.mirrored.find((p) => p.header === header);
    const shown = `Mcp-Param-${header.slice(0, 64)}`;
    if (param === undefined) return `the ${shown} header names no argument this tool mirrors (x-mcp-header in its pinned inputSchema)`;
    let value: JsonValue | undefined = args;
    for (const member of param.path) value = value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, member) ? value[member] : undefined;
    if (value === undefined || value === null) return `the ${shown} header is sent for params.arguments.${param.path.join('.')}, which the body does not set`;
    const decoded = decodeMirrored(raw);
    if (decoded === null) return `the ${shown} header holds no valid Base64 of UTF-8 in its =?base64?...?= form`;
    if (!mirrorsArgument(decoded, value, param.type)) return `the ${shown} header does not match params.arguments.${param.path.join('.')} in the body`;
  }
  return null;
}
