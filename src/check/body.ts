// JSON request bodies -> Cedar values. Cedar has no null and no floating point (FACTS, Cedar),
// and reads {"__entity": ...} / {"__extn": ...} as entity references and extension calls, so a
// body is converted on purpose, never passed through:
//   null          -> the attribute is left out (Cedar's "has" then says it is absent)
//   integer       -> Long, if it fits in a JS safe integer (json.ts refuses larger ones)
//   fraction      -> decimal("..."), if it has at most 4 fractional digits (Cedar decimal's limit)
//   "__entity", "__extn", "__expr" keys -> refused: a client must not forge entity references
// Anything else unrepresentable is a bad_request with a message that says what and where.

import { readStrictJson } from '../json/strict.js';
import { deny, ok, type Outcome } from '../core/reasons.js';

type CedarJson = boolean | number | string | CedarJson[] | { [key: string]: CedarJson };

const RESERVED_KEYS = new Set(['__entity', '__extn', '__expr']);
const DECIMAL = /^-?\d{1,15}(?:\.\d{1,4})?$/;
const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** One decoder for every body: without `stream`, each decode() starts afresh. */
const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true });

export function isJsonContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && JSON_CONTENT_TYPE.test(contentType);
}

/**
 * The body as text, read as the upstream will read it or not at all: bounded, exactly as long as
 * its content-length says (shorter: Envoy cut it, allow_partial_message; longer: not Envoy's
 * framing), not content-encoded (Mandate would decide on the compressed bytes while the upstream
 * decodes them into another document), in no charset but UTF-8 (an upstream honouring
 * `charset=iso-8859-1` reads other strings from the same bytes), and valid UTF-8.
 * headers is null for a body that did not come with an HTTP request.
 */
export function readBodyText(body: Uint8Array | string, headers: ReadonlyMap<string, string> | null, maxBytes: number): Outcome<string> {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > maxBytes) return deny('bad_request', `body is larger than ${maxBytes} bytes`);
  if (headers !== null) {
    const length = headers.get('content-length');
    if (length !== undefined) {
      if (!/^[0-9]{1,15}$/.test(length)) return deny('bad_request', 'content-length is not a decimal number of bytes');
      if (Number(length) > size) return deny('bad_request', 'body was truncated before it reached the decision point');
      if (Number(length) < size) return deny('bad_request', 'body is longer than its content-length');
    }
    const encoding = headers.get('content-encoding');
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      return deny('bad_request', `body is content-encoded (${encoding.slice(0, 32)}): Mandate would read the encoded bytes, the upstream the decoded body (put Envoy's decompressor before ext_authz)`);
    }
    const charset = charsetRefusal(headers.get('content-type'));
    if (charset !== null) return deny('bad_request', charset);
  }
  if (typeof body === 'string') return ok(body);
  try {
    return ok(UTF8_STRICT.decode(body));
  } catch {
    return deny('bad_request', 'body is not valid UTF-8');
  }
}

/** Why a content-type's parameters name another charset than UTF-8 (or name one twice), or null. */
function charsetRefusal(contentType: string | undefined): string | null {
  if (contentType === undefined || !contentType.includes(';')) return null;
  let seen = false;
  for (const param of contentType.split(';').slice(1)) {
    const eq = param.indexOf('=');
    if (param.slice(0, eq < 0 ? undefined : eq).trim().toLowerCase() !== 'charset') continue;
    const value = eq < 0 ? '' : param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
    if (seen) return 'content-type names a charset twice';
    seen = true;
    if (value !== 'utf-8' && value !== 'utf8') return `content-type names the charset "${value.slice(0, 32)}": bodies are read as UTF-8 only`;
  }
  return null;
}

export function parseJsonBody(body: Uint8Array | string, maxBytes: number, maxDepth: number): Outcome<CedarJson> {
  const read = readBodyText(body, null, maxBytes);
  if (!read.ok) return read;
  // One reading or none (json.ts): the upstream parses this body again with its own parser.
  const parsed = readStrictJson(read.value, { maxDepth });
  if (!parsed.ok) return deny('bad_request', parsed.kind === 'syntax' ? `body is not valid JSON: ${parsed.message} (at offset ${parsed.offset})` : `body is refused: ${parsed.message} (at offset ${parsed.offset})`);
  const converted = toCedar(parsed.value, 'body', 0, maxDepth);
  if (converted === undefined) return deny('bad_request', 'body is JSON null');
  if ('error' in converted) return deny('bad_request', converted.error);
  return ok(converted.value);
}

type Converted = { readonly value: CedarJson } | { readonly error: string } | undefined;

/** undefined: leave this attribute out (a JSON null). */
function toCedar(value: unknown, where: string, depth: number, maxDepth: number): Converted {
  if (depth > maxDepth) return { error: `${where} is nested deeper than ${maxDepth} levels` };
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return { value };
    case 'number': {
      if (Number.isInteger(value)) {
        return Number.isSafeInteger(value) ? { value } : { error: `${where} is an integer too large to represent exactly` };
      }
      const text = String(value);
      if (!DECIMAL.test(text)) return { error: `${where} is a number with more than 4 fractional digits, which Cedar cannot represent` };
      return { value: { __extn: { fn: 'decimal', arg: text } } as unknown as CedarJson };
    }
    case 'object': {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        const out: CedarJson[] = [];
        for (let i = 0; i < value.length; i++) {
          const item = toCedar(value[i], `${where}[${i}]`, depth + 1, maxDepth);
          if (item === undefined) return { error: `${where}[${i}] is null, which a Cedar set cannot hold` };
          if ('error' in item) return item;
          out.push(item.value);
        }
        return { value: out };
      }
      const out: { [key: string]: CedarJson } = {};
      for (const key of Object.keys(value)) {
        if (RESERVED_KEYS.has(key)) return { error: `${where} has the reserved key "${key}"` };
        const item = toCedar((value as Record<string, unknown>)[key], `${where}.${key}`, depth + 1, maxDepth);
        if (item === undefined) continue;
        if ('error' in item) return item;
        out[key] = item.value;
      }
      return { value: out };
    }
    default:
      return { error: `${where} has a value Cedar cannot represent` };
  }
}

/**
 * Whether a parameter or body member name is `_method` to some framework, read as PHP reads
 * names (" ", "." and "[" become "_"), in any case. Symfony and Laravel take a `_method` of a
 * POST's parameters for the request's method; Laravel's parameters include a JSON body's
 * top-level members, so `{"_method":"DELETE"}` posted to a route runs its DELETE.
 */
export function isMethodParameter(name: string): boolean {
  return name.length === 7 && name.replace(/[ .[]/g, '_').toLowerCase() === '_method';
}

/** The first top-level member of a JSON object body that is a `_method` parameter (isMethodParameter), or null. */
export function methodMember(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  for (const name of Object.keys(value)) if (isMethodParameter(name)) return name;
  return null;
}
