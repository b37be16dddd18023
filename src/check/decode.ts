// Stage 1: CheckRequest (as grpc-js hands it to us, or as `mandate check` reads it) -> the few
// fields the pipeline uses, checked for shape. Field meanings follow Envoy's
// attribute_context.proto and the ext_authz filter docs (see ../../../shared/FACTS.md).

import { HTTP_METHODS } from '../config/types.js';
import type { Limits } from '../config/types.js';
import { deny, ok, type Outcome } from '../core/reasons.js';

// The object shape @grpc/proto-loader produces (camelCase, int64 as string, bytes as Buffer).
export interface PeerMessage {
  address?: { socketAddress?: { address?: string; portValue?: number } } | null;
  principal?: string;
  certificate?: string;
}
export interface HeaderValueMessage {
  key?: string;
  value?: string;
  rawValue?: Uint8Array;
}
export interface HttpRequestMessage {
  method?: string;
  /** A plain object from @grpc/proto-loader; a Map from the served codec (server/codec.ts). */
  headers?: Readonly<Record<string, string>> | ReadonlyMap<string, string>;
  headerMap?: { headers?: HeaderValueMessage[] } | null;
  path?: string;
  host?: string;
  scheme?: string;
  body?: string;
  rawBody?: Uint8Array;
}
export interface CheckRequestMessage {
  attributes?: {
    source?: PeerMessage | null;
    destination?: PeerMessage | null;
    request?: { time?: { seconds?: string | number } | null; http?: HttpRequestMessage | null } | null;
    contextExtensions?: Record<string, string>;
  } | null;
}

export interface Peer {
  readonly address: string;
  readonly port: number;
  readonly principal: string;
  /** URL-encoded PEM, as Envoy sends it; '' when absent. */
  readonly certificate: string;
}

export interface DecodedRequest {
  readonly method: string;
  /** Path without the query string, not decoded (routing reads its spelling). */
  readonly path: string;
  /** The path as policies read it (context.http.path): normalizePath's form. */
  readonly normalizedPath: string;
  /** Query string without "?", not decoded (the _method and control checks read its spelling). */
  readonly query: string;
  /** The query as policies read it (context.http.query): normalizePath's form. */
  readonly normalizedQuery: string;
  readonly host: string;
  readonly scheme: string;
  /** Lower-case names; repeated headers merged with "," as Envoy does for the headers map. */
  readonly headers: ReadonlyMap<string, string>;
  /** Raw body bytes or string, null when Envoy sent none. */
  readonly body: Uint8Array | string | null;
  readonly source: Peer;
  readonly destination: Peer;
  readonly extensions: Readonly<Record<string, string>>;
  readonly epochSeconds: number;
}

const KNOWN_METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
// Headers whose second copy makes the request ambiguous (RFC 9110 §5.3: only list-valued fields
// may repeat). Envoy would have merged them into "a,b", which we refuse the same way.
const SINGLE_VALUED = new Set([':authority', ':method', ':path', ':scheme', 'host', 'content-type', 'content-length', 'authorization', 'txn-token']);
/**
 * Whether a string holds U+FFFD, as `includes` would answer. A regular expression, because V8
 * compiles it apart for one-byte strings, where U+FFFD cannot occur: most header values (tokens
 * of a kilobyte among them) are answered without a scan.
 */
const HAS_REPLACEMENT = /\uFFFD/;
/** A character outside lower-case RFC 9110 token characters (and ":" of pseudo-headers), or "_". */
const NOT_PLAIN_NAME = /[^a-z0-9!#$%&'*+.^`|~:-]/;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
/** What decoding needs from the configuration (pipeline.ts decodeRulesFor). */
export interface DecodeRules {
  /** The header names Mandate reads or sets: a lone header an upstream reading "_" as "-" takes for one is refused. */
  readonly readHeaders: ReadonlySet<string>;
  /** config.context.forwardedHost. */
  readonly forwardedHost: 'refuse' | 'ignore';
}
const DEFAULT_RULES: DecodeRules = Object.freeze({ readHeaders: new Set<string>(), forwardedHost: 'refuse' });
export const PATH_OVERRIDE_HEADERS = ['x-original-url', 'x-rewrite-url'] as const;
const EMPTY_PEER: Peer = Object.freeze({ address: '', port: 0, principal: '', certificate: '' });

/** `rules`: by default no header names are known to be read (only "_" pairs are looked for). */
export function decodeCheckRequest(message: CheckRequestMessage, limits: Limits, nowSeconds: number, rules: DecodeRules = DEFAULT_RULES): Outcome<DecodedRequest> {
  const attributes = message.attributes;
  const http = attributes?.request?.http;
  if (attributes == null || http == null) return deny('bad_request', 'CheckRequest has no HTTP request attributes');

  const method = http.method ?? '';
  if (method === '') return deny('bad_request', 'HTTP method is missing');
  if (!KNOWN_METHODS.has(method)) return deny('bad_request', 'unknown HTTP method');

  const rawPath = http.path ?? '';
  if (rawPath.length > limits.maxPathBytes) return deny('bad_request', `path is longer than ${limits.maxPathBytes} bytes`);
  if (!rawPath.startsWith('/')) return deny('bad_request', 'path must start with "/"');
  if (HAS_REPLACEMENT.test(rawPath)) return deny('bad_request', 'path is not valid UTF-8');
  const q = rawPath.indexOf('?');
  const path = q < 0 ? rawPath : rawPath.slice(0, q);
  const query = q < 0 ? '' : rawPath.slice(q + 1);
  const unsafe = unsafePathReason(path, query);
  if (unsafe !== null) return deny('bad_request', unsafe);
  const normalizedPath = normalizePath(path);
  // An escaped "." or ".." segment (`/tickets/T-1/%2e%2e/internal-0`): a WHATWG URL parser and
  // other normalizers resolve it as the dot segment it spells.
  if (normalizedPath !== path && DOT_SEGMENT.test(normalizedPath)) return deny('bad_request', 'path is not normalized (an escaped "." or ".." segment)');

  const headers = decodeHeaders(http, limits, rules.readHeaders);
  if (!headers.ok) return headers;
  // Envoy fills both from one header map; a CheckRequest where they disagree was not built by it.
  const pseudoMethod = headers.value.get(':method');
  if (pseudoMethod !== undefined && pseudoMethod !== method) return deny('bad_request', 'the :method header and the request method disagree');
  const pseudoPath = headers.value.get(':path');
  if (pseudoPath !== undefined && pseudoPath !== rawPath) return deny('bad_request', 'the :path header and the request path disagree');
  // The host too (Envoy's host field is its :authority); a Host beside it that names another host
  // is two readings of where the request goes.
  const authority = headers.value.get(':authority');
  const hostHeader = headers.value.get('host');
  if (authority !== undefined && (http.host ?? '') !== '' && authority !== http.host) return deny('bad_request', 'the :authority header and the request host disagree');
  if (hostHeader !== undefined && (http.host ?? '') !== '' && hostHeader !== http.host) return deny('bad_request', 'the host header and the request host disagree');
  if (authority !== undefined && hostHeader !== undefined && authority !== hostHeader) return deny('bad_request', 'the :authority and host headers disagree');
  const host = canonicalHost(http.host || authority || hostHeader || '', http.scheme ?? '');
  if (!host.ok) return host;
  if (rules.forwardedHost === 'refuse') {
    const forwarded = forwardedHostRefusal(headers.value, host.value, http.scheme ?? '');
    if (forwarded !== null) return deny('bad_request', forwarded);
  }

  // Path-override headers: IIS's URL Rewrite and older Symfony route on X-Original-URL /
  // X-Rewrite-URL instead of the request line, so the upstream would run another path.
  for (const name of PATH_OVERRIDE_HEADERS) {
    if (headers.value.has(name)) return deny('bad_request', `the ${name} header asks some upstreams for another path than the request's`);
  }

  // Envoy sends the body one way (raw_body with pack_as_bytes, else body): both is two bodies.
  const hasRawBody = http.rawBody !== undefined && http.rawBody.length > 0;
  const hasBody = http.body !== undefined && http.body !== '';
  if (hasRawBody && hasBody) return deny('bad_request', 'the request carries both body and raw_body');
  let body: Uint8Array | string | null = null;
  if (hasRawBody) body = http.rawBody as Uint8Array;
  else if (hasBody) body = http.body as string;

  const seconds = Number(attributes.request?.time?.seconds ?? 0);
  if (!Number.isSafeInteger(seconds)) return deny('bad_request', 'request time is out of range');
  return ok({
    method,
    path,
    normalizedPath,
    query,
    normalizedQuery: normalizePath(query),
    host: host.value,
    scheme: http.scheme ?? '',
    headers: headers.value,
    body,
    source: decodePeer(attributes.source),
    destination: decodePeer(attributes.destination),
    extensions: attributes.contextExtensions ?? {},
    epochSeconds: seconds > 0 ? seconds : nowSeconds,
  });
}

const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
const ESCAPE = /%[0-9A-Fa-f]{2}/g;

/**
 * A path or query in RFC 3986 §6.2.2 normal form: an escaped unreserved character (ALPHA, DIGIT, "-",
 * ".", "_", "~") is the character itself, other escapes in upper case. `/tickets/%69nternal-0`
 * is `/tickets/internal-0`, as the upstream reads it.
 */
function normalizePath(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(ESCAPE, (pct) => {
    const c = Number.parseInt(pct.slice(1), 16);
    const unreserved = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
    return unreserved ? String.fromCharCode(c) : pct.toUpperCase();
  });
}

// RFC 3986 §3.3: a path is "/" and pchar = unreserved / pct-encoded / sub-delims / ":" / "@".
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const PERCENT = /%(?![0-9A-Fa-f]{2})|%(?:[01][0-9A-Fa-f]|7[Ff]|5[Cc]|23|3[Bb])/;
const CONTROL_OR_HASH = /[\u0000-\u001f\u007f#\\]/;

/**
 * Why a path could be read differently by the upstream than by Mandate, or null (docs/decision-
 * model.md, "What Mandate refuses"): a character outside pchar and "/" (a backslash is "/" to a
 * WHATWG URL parser, "#" starts a fragment, controls are cut or kept), a malformed percent-escape,
 * or an escaped control, backslash, "#" or ";". A literal ";" is left to the route: servlet
 * containers and Python's urlparse drop "; parameters", so routes.ts refuses it unless the route
 * takes matrix parameters.
 */
function unsafePathReason(path: string, query: string): string | null {
  if (!PATH_CHARS.test(path)) {
    const bad = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]/.exec(path)?.[0] ?? '';
    return `path holds ${describeChar(bad)}, which is not allowed in a path (RFC 3986 pchar)`;
  }
  const badEscape = PERCENT.exec(path);
  if (badEscape !== null) {
    return badEscape[0] === '%' ? 'path holds a "%" that is not a percent-escape' : `path holds the escape ${badEscape[0]} (a control, "\\", "#" or ";"), which upstreams read differently`;
  }
  const inQuery = CONTROL_OR_HASH.exec(query);
  if (inQuery !== null && inQuery[0] !== '\\') return `query holds ${describeChar(inQuery[0])}`;
  return null;
}

// RFC 3986 §3.2.2-3: an IP literal or a reg-name (no "%": an escaped host name is another
// spelling of a name), then an optional port.
const AUTHORITY = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]*)(?::([0-9]*))?$/;
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' };

/**
 * The request's host as every upstream reads it (RFC 3986 §6.2.2.1, §6.2.3; RFC 9110 §4.2.3:
 * host names are case-insensitive, an empty or the scheme's default port is no port, a
 * trailing "." names the same DNS host). So `ADMIN.internal`, `admin.internal.` and
 * `admin.internal:80` are `admin.internal` to a policy, as they are to the upstream's virtual
 * hosts. A host that is no RFC 3986 authority (userinfo, "%", spaces) is refused.
 */
export function canonicalHost(raw: string, scheme: string): Outcome<string> {
  if (raw === '') return ok('');
  // A mesh sends a handful of hosts over and over: each is read once (a bounded memo of a pure
  // function), looked up by scheme, then by host (no key string built per request).
  let byHost = HOSTS_READ.get(scheme);
  if (byHost === undefined) {
    if (HOSTS_READ.size >= SCHEMES_KEPT) HOSTS_READ.clear();
    HOSTS_READ.set(scheme, (byHost = new Map()));
  }
  let read = byHost.get(raw);
  if (read === undefined) {
    if (byHost.size >= HOSTS_KEPT) byHost.clear();
    byHost.set(raw, (read = Object.freeze(readHost(raw, scheme))));
  }
  return read;
}

const HOSTS_READ = new Map<string, Map<string, Outcome<string>>>();
const HOSTS_KEPT = 1024;
/** Envoy's scheme is http or https; anything else a client can send is bounded too. */
const SCHEMES_KEPT = 8;

function readHost(raw: string, scheme: string): Outcome<string> {
  const parts = AUTHORITY.exec(raw);
  if (parts === null) return deny('bad_request', 'the request host is not a host name or address with an optional port (RFC 3986)');
  let name = (parts[1] as string).toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === '' || name.endsWith('.')) return deny('bad_request', 'the request host has an empty name or label');
  const port = parts[2];
  if (port === undefined || port === '' || port === DEFAULT_PORTS[scheme.toLowerCase()]) return ok(name);
  if (!/^[1-9][0-9]{0,4}$/.test(port) || Number(port) > 65535) return deny('bad_request', 'the request host has a port out of range or with leading zeros');
  return ok(`${name}:${port}`);
}

/**
 * Why X-Forwarded-Host or Forwarded's `host=` (RFC 7239) names another host than the request's,
 * or null. Express, Django, Rails and Spring take the host from them when told to trust
 * proxies, and serve (or pick the tenant of) that host while Mandate decided on the request's.
 * Every listed host must be the request's host, as canonicalHost reads both.
 */
function forwardedHostRefusal(headers: ReadonlyMap<string, string>, host: string, scheme: string): string | null {
  const named: [header: string, host: string][] = [];
  const xfh = headers.get('x-forwarded-host');
  if (xfh !== undefined) for (const h of xfh.split(',')) named.push(['x-forwarded-host', h.trim()]);
  const forwarded = headers.get('forwarded');
  if (forwarded !== undefined && /host/i.test(forwarded)) {
    for (const element of forwarded.split(',')) {
      for (const pair of element.split(';')) {
        const eq = pair.indexOf('=');
        if (eq >= 0 && pair.slice(0, eq).trim().toLowerCase() === 'host') named.push(['forwarded', pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')]);
      }
    }
  }
  for (const [header, h] of named) {
    const read = canonicalHost(h, scheme);
    if (!read.ok || read.value !== host) {
      return `${header} names the host "${printable(h)}", not the request's: upstreams that trust it serve that host (context.forwardedHost)`;
    }
  }
  return null;
}

function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  return code >= 0x21 && code < 0x7f ? `"${c}"` : `the character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

function decodePeer(peer: PeerMessage | null | undefined): Peer {
  if (peer == null) return EMPTY_PEER;
  const socket = peer.address?.socketAddress;
  return {
    address: socket?.address ?? '',
    port: socket?.portValue ?? 0,
    principal: peer.principal ?? '',
    certificate: peer.certificate ?? '',
  };
}

function decodeHeaders(http: HttpRequestMessage, limits: Limits, readHeaders: ReadonlySet<string>): Outcome<ReadonlyMap<string, string>> {
  const entries = http.headerMap?.headers;
  const given = http.headers;
  // The served codec's headers come as a Map; @grpc/proto-loader's as an object.
  const asMap = given instanceof Map ? (given as ReadonlyMap<string, string>) : null;
  const asObject = given === undefined || asMap !== null ? null : (given as Readonly<Record<string, string>>);
  const keys = asObject === null ? null : Object.keys(asObject);
  const mapped = asMap !== null ? asMap.size : (keys?.length ?? 0);
  // Bounded before anything is copied: Envoy itself never forwards more than its own limits
  // (max_headers_count, max_request_headers_kb), so a larger set did not come through it.
  const useMap = entries !== undefined && entries.length > 0;
  // Envoy sends headers one way (header_map with encode_raw_headers, else headers): both is two header sets.
  if (useMap && mapped > 0) return deny('bad_request', 'the request carries both headers and header_map');
  const count = useMap ? (entries as HeaderValueMessage[]).length : mapped;
  if (count > limits.maxHeaders) return deny('bad_request', `the request has ${count} headers, more than ${limits.maxHeaders} (limits.maxHeaders)`);
  let bytes = 0;
  // A Map whose names are all lower-case and valid is already the header map addHeader would
  // build from it (a Map keeps a name's first position, as protobuf's map does): taken as it is.
  let inForm = asMap !== null;
  let underscore = false;
  if (useMap) for (const e of entries as HeaderValueMessage[]) bytes += (e.key?.length ?? 0) + Math.max(e.value?.length ?? 0, e.rawValue?.length ?? 0);
  else if (asMap !== null) {
    for (const [name, value] of asMap) {
      bytes += name.length + value.length;
      if (HAS_REPLACEMENT.test(value)) inForm = false;
      // One test for most names (lower-case token characters only); the others are looked at closely.
      if (!NOT_PLAIN_NAME.test(name)) continue;
      if (name.toLowerCase() !== name || HAS_REPLACEMENT.test(name)) inForm = false;
      if (name.includes('_')) underscore = true;
    }
  } else if (keys !== null) for (const k of keys) bytes += k.length + ((asObject as Record<string, string>)[k] as string).length;
  if (bytes > limits.maxHeaderBytes) return deny('bad_request', `the request's headers add up to more than ${limits.maxHeaderBytes} bytes (limits.maxHeaderBytes)`);
  if (inForm) {
    const headers = asMap as ReadonlyMap<string, string>;
    return (underscore ? underscoreClash(headers, readHeaders) : null) ?? ok(headers);
  }
  const out = new Map<string, string>();
  if (useMap) {
    // encode_raw_headers: one entry per header line, values possibly as raw bytes.
    for (const entry of entries) {
      let value = entry.value ?? '';
      if (entry.rawValue !== undefined && entry.rawValue.length > 0) {
        try {
          value = utf8Strict.decode(entry.rawValue);
        } catch {
          return deny('bad_request', `header "${printable((entry.key ?? '').toLowerCase())}" is not valid UTF-8`);
        }
      }
      const refused = addHeader(out, entry.key ?? '', value);
      if (refused !== null) return refused;
    }
  } else if (asMap !== null) {
    for (const [name, value] of asMap) {
      const refused = addHeader(out, name, value);
      if (refused !== null) return refused;
    }
  } else if (asObject !== null && keys !== null) {
    for (const key of keys) {
      const refused = addHeader(out, key, asObject[key] as string);
      if (refused !== null) return refused;
    }
  }
  return underscoreClash(out, readHeaders) ?? ok(out);
}

/**
 * One header line into `out`, the same way for both forms of a CheckRequest's headers: names
 * lower-cased (Envoy sends them so; names differing in case only are one header, never one
 * dropped), a repeated single-valued header refused, other repeats joined with a comma.
 */
function addHeader(out: Map<string, string>, rawName: string, value: string): Outcome<never> | null {
  const name = rawName.toLowerCase();
  // Invalid UTF-8 in a proto3 string decodes to U+FFFD; refuse rather than decide on a guess.
  if (HAS_REPLACEMENT.test(name) || HAS_REPLACEMENT.test(value)) return deny('bad_request', `header "${printable(name)}" is not valid UTF-8`);
  const previous = out.get(name);
  if (previous === undefined) out.set(name, value);
  else if (SINGLE_VALUED.has(name)) return deny('bad_request', `header "${printable(name)}" is repeated`);
  else out.set(name, `${previous},${value}`);
  return null;
}

/**
 * Two header names that differ only by "_" against "-" (`x_tenant_id` beside `x-tenant-id`):
 * upstreams behind CGI-style gateways (WSGI, PHP, Rack, many nginx setups) read both as one
 * HTTP_X_TENANT_ID, and which one they keep is theirs to choose, while Mandate decided on the
 * other. Envoy forwards such names by default (headers_with_underscores_action: ALLOW). A lone
 * such name is refused too when its "-" form is a header Mandate reads or sets (`readHeaders`):
 * `x_http_method_override: DELETE` is no override to Mandate and one to Rack, and
 * `x_mandate_principal` stands beside the x-mandate-principal Envoy adds on allow.
 */
function underscoreClash(headers: ReadonlyMap<string, string>, readHeaders: ReadonlySet<string>): Outcome<never> | null {
  let any = false;
  for (const name of headers.keys()) if (name.includes('_')) any = true;
  if (!any) return null;
  const folded = new Map<string, string>();
  for (const name of headers.keys()) {
    const key = name.replaceAll('_', '-');
    const other = folded.get(key);
    if (other !== undefined) return deny('bad_request', `headers "${printable(other)}" and "${printable(name)}" are one header to an upstream that reads "_" as "-"`);
    if (key !== name && readHeaders.has(key)) return deny('bad_request', `header "${printable(name)}" is "${key}" to an upstream that reads "_" as "-", a header Mandate reads or sets`);
    folded.set(key, name);
  }
  return null;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 64);
}

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-parentspanid', 'x-b3-flags'];

/** The trace-context headers of a CheckRequest, read without decoding the rest (for tracing). */
export function traceHeaders(message: CheckRequestMessage): Map<string, string> {
  const out = new Map<string, string>();
  const http = message.attributes?.request?.http;
  if (http == null) return out;
  const entries = http.headerMap?.headers;
  if (entries !== undefined && entries.length > 0) {
    for (const e of entries) {
      const key = (e.key ?? '').toLowerCase();
      if (TRACE_HEADERS.includes(key)) out.set(key, e.rawValue !== undefined && e.rawValue.length > 0 ? Buffer.from(e.rawValue).toString('latin1') : (e.value ?? ''));
    }
    return out;
  }
  const given = http.headers;
  if (given === undefined) return out;
  for (const key of TRACE_HEADERS) {
    const value = given instanceof Map ? (given as ReadonlyMap<string, string>).get(key) : (given as Readonly<Record<string, string>>)[key];
    if (value !== undefined) out.set(key, value);
  }
  return out;
}
