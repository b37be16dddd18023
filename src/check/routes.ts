// The route table: (method, path) -> route, path parameters and Cedar action/resource.
// Built once per config; matching walks a segment trie, literal segments before parameters,
// so /tickets/export wins over /tickets/{id} whatever the order in the config.
//
// Paths are matched as Envoy sends them: not decoded (Envoy's ext_authz docs), query already
// split off. Paths that an upstream could read differently from us are refused as bad_request
// rather than guessed at: empty, "." and ".." segments, encoded "/" or "\" in a parameter, a
// parameter still percent-encoded after decoding (an upstream that decodes twice reads another
// value), and ";" path parameters unless the route says the upstream reads them (decode.ts
// refuses the characters no route may take). A segment spelled otherwise than a route's literal
// segment but read as it by some upstream (another case, a percent-escape: "/tickets/Export",
// "/tickets/%65xport" beside "/tickets/export") is refused too: routers that compare segments
// case-insensitively (Express's default, ASP.NET Core) or after decoding (Go's ServeMux,
// Spring, Flask) would run the literal route's handler while Mandate matched a parameter.

import { ConfigError } from '../config/fields.js';
import { foldName } from '../json/strict.js';
import type { HttpMethod, RouteConfig } from '../config/types.js';
import { deny, ok, type Outcome } from '../core/reasons.js';

export interface CompiledRoute {
  readonly method: HttpMethod;
  readonly template: string;
  /** Cedar action id: "<METHOD> <template>" (the convention of @cedar-policy/authorization-for-expressjs). */
  readonly action: string;
  readonly resourceType: string;
  readonly buildResourceId: (params: Readonly<Record<string, string>>) => string;
  readonly paramNames: readonly string[];
  readonly body: boolean;
  readonly tool: string | null;
  /** null: only tool calls need a task (a route with a tool, MCP tools/call). */
  readonly requireTask: boolean | null;
  readonly matrixParams: boolean;
  readonly methodOverride: string | null;
  readonly mcp: RouteConfig['mcp'];
  /** Where the route came from (config.routes[i], or the OpenAPI file and operation). */
  readonly origin: string;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  readonly params: Readonly<Record<string, string>>;
}

interface Node {
  literal: Map<string, Node>;
  /** The literal segments by their folded reading (segmentKey), or null when there are none. */
  folded: Map<string, string> | null;
  param: Node | null;
  route: CompiledRoute | null;
}

/** A segment some upstream reads as a route's literal segment, though not spelled as it. */
class Lookalike {
  constructor(
    readonly segment: string,
    readonly literal: string,
  ) {}
}

const PARAM_SEGMENT = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%]+$/;
const RESOURCE_TEMPLATE = /^((?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)::"((?:[^"\\]|\\.)*)"$/;
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function newNode(): Node {
  return { literal: new Map(), folded: null, param: null, route: null };
}

export class RouteTable {
  private readonly roots = new Map<string, Node>();
  readonly routes: readonly CompiledRoute[];

  constructor(configs: readonly RouteConfig[], application: string) {
    const routes: CompiledRoute[] = [];
    for (const config of configs) {
      const route = compileRoute(config, application);
      let node = this.roots.get(route.method);
      if (node === undefined) this.roots.set(route.method, (node = newNode()));
      for (const segment of splitTemplate(config)) {
        if (segment.param) {
          node = node.param ??= newNode();
        } else {
          let next = node.literal.get(segment.text);
          if (next === undefined) {
            const key = segmentKey(segment.text);
            const other = node.folded?.get(key);
            if (other !== undefined) {
              throw new ConfigError(`${config.origin}.path`, `"${config.path}": the segment "${segment.text}" is read as "${other}" of another route by upstreams that compare segments case-insensitively or decoded`);
            }
            (node.folded ??= new Map()).set(key, segment.text);
            node.literal.set(segment.text, (next = newNode()));
          }
          node = next;
        }
      }
      if (node.route !== null) {
        throw new ConfigError(config.origin, `route ${route.action} matches the same requests as ${node.route.action}`);
      }
      node.route = route;
      routes.push(route);
    }
    this.routes = Object.freeze(routes);
  }

  /** null: no route for this method and path. */
  match(method: string, path: string): Outcome<RouteMatch | null> {
    const root = this.roots.get(method);
    if (root === undefined) return ok(null);
    if (path === '/') return ok(root.route === null ? null : { route: root.route, params: {} });
    // ";" starts path parameters for servlet containers and Python's urlparse, which then route
    // on the segment without them: only a route that says its upstream does so is matched that way.
    const matrix = path.includes(';');
    const segments = splitSlash(matrix ? path.replace(/;[^/]*/g, '') : path);
    // segments[0] is '' (path starts with '/'), checked by decode. A trailing '/' leaves an
    // empty last segment: a different path, which simply has no route unless one is declared.
    const last = segments.length - 1;
    for (let i = 1; i < segments.length; i++) {
      const s = segments[i] as string;
      if ((s === '' && i < last) || s === '.' || s === '..') {
        return deny('bad_request', 'path is not normalized (empty, "." or ".." segment)');
      }
    }
    const values: string[] = [];
    const route = walk(root, segments, 1, values);
    if (route instanceof Lookalike) {
      return deny('bad_request', `path segment "${route.segment}" is read as the route segment "${route.literal}" by upstreams that compare segments case-insensitively or decoded; spell it as the route does`);
    }
    if (matrix && (route === null || !route.matrixParams)) {
      return deny('bad_request', 'path holds ";" (path parameters), which upstreams read differently; a route takes them only with matrixParams: true');
    }
    if (route === null) return ok(null);
    const params: Record<string, string> = {};
    for (let i = 0; i < values.length; i++) {
      const decoded = decodeParam(values[i] as string);
      if (decoded === null) return deny('bad_request', `path parameter "${route.paramNames[i]}" does not decode to one value every upstream reads alike (a bad escape, an encoded separator, a double escape, surrounding spaces or text NFKC changes)`);
      params[route.paramNames[i] as string] = decoded;
    }
    return ok({ route, params });
  }
}

/**
 * `s.split('/')`, in JS: String.prototype.split is a call into V8's runtime (~2 us of a Check's
 * main-thread time under load, for a three-segment path); indexOf and slice are not.
 */
export function splitSlash(s: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let at = s.indexOf('/'); at >= 0; at = s.indexOf('/', from)) {
    out.push(s.slice(from, at));
    from = at + 1;
  }
  out.push(s.slice(from));
  return out;
}

function walk(node: Node, segments: readonly string[], i: number, values: string[]): CompiledRoute | Lookalike | null {
  if (i === segments.length) return node.route;
  const segment = segments[i] as string;
  const literal = node.literal.get(segment);
  if (literal !== undefined) {
    const found = walk(literal, segments, i + 1, values);
    if (found !== null) return found;
  } else if (node.folded !== null && segment !== '') {
    const lookalike = node.folded.get(segmentKey(segment));
    if (lookalike !== undefined) return new Lookalike(segment, lookalike);
  }
  if (node.param !== null && segment !== '') {
    values.push(segment);
    const found = walk(node.param, segments, i + 1, values);
    if (found !== null) return found;
    values.pop();
  }
  return null;
}

/**
 * How the most lenient common router reads a segment: percent-escapes decoded (a segment
 * decodeEscapes refuses is left as it is: it is refused on its own as a parameter), then folded as JSON member names are
 * (case, NFKC, invisible characters: strict.ts foldName).
 */
function segmentKey(segment: string): string {
  return foldName(segment.includes('%') ? (decodeEscapes(segment) ?? segment) : segment);
}

function decodeParam(raw: string): string | null {
  if (!raw.includes('%')) return raw;
  const decoded = decodeEscapes(raw);
  // Upstreams that trim identifiers, drop invisible characters or normalize Unicode (NFKC:
  // fullwidth letters, ligatures) would read another value than the one decided on.
  if (decoded === null || decoded !== decoded.trim() || INVISIBLE.test(decoded) || decoded !== decoded.normalize('NFKC')) return null;
  return decoded;
}

const INVISIBLE = /[\p{Cc}\p{Default_Ignorable_Code_Point}]/u;

function decodeEscapes(raw: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return null;
  }
  // An encoded separator would let the upstream see a different path than the one decided on,
  // and a value still escaped after one decoding is another value to an upstream that decodes twice.
  if (decoded.includes('/') || decoded.includes('\\') || decoded === '.' || decoded === '..' || /%[0-9A-Fa-f]{2}/.test(decoded)) return null;
  return decoded;
}

function splitTemplate(config: RouteConfig): { text: string; param: boolean }[] {
  const { path, origin } = config;
  if (!path.startsWith('/')) throw new ConfigError(`${origin}.path`, `"${path}" must start with "/"`);
  if (path === '/') return [];
  return path.slice(1).split('/').map((text) => {
    const param = PARAM_SEGMENT.exec(text);
    if (param !== null) return { text: param[1] as string, param: true };
    if (text === '' || text === '.' || text === '..' || !LITERAL_SEGMENT.test(text) || text.includes('{')) {
      throw new ConfigError(`${origin}.path`, `"${path}" has an invalid segment "${text}" (use whole-segment {name} parameters)`);
    }
    return { text, param: false };
  });
}

function compileRoute(config: RouteConfig, application: string): CompiledRoute {
  const paramNames = splitTemplate(config).filter((s) => s.param).map((s) => s.text);
  if (new Set(paramNames).size !== paramNames.length) {
    throw new ConfigError(`${config.origin}.path`, `"${config.path}" repeats a parameter name`);
  }
  const template = config.resource ?? `Application::"${escapeCedarString(application)}"`;
  const parsed = RESOURCE_TEMPLATE.exec(template);
  if (parsed === null) {
    throw new ConfigError(`${config.origin}.resource`, `"${template}" is not a Cedar entity reference such as Ticket::"{id}"`);
  }
  const resourceType = parsed[1] as string;
  const idTemplate = unescapeCedarString(parsed[2] as string);
  for (const match of idTemplate.matchAll(PLACEHOLDER)) {
    if (!paramNames.includes(match[1] as string)) {
      throw new ConfigError(`${config.origin}.resource`, `"{${match[1]}}" is not a parameter of ${config.path}`);
    }
  }
  return {
    method: config.method,
    template: config.path,
    action: `${config.method} ${config.path}`,
    resourceType,
    buildResourceId: compileIdTemplate(idTemplate),
    paramNames,
    body: config.body,
    tool: config.tool,
    requireTask: config.requireTask,
    matrixParams: config.matrixParams,
    methodOverride: config.methodOverride,
    mcp: config.mcp,
    origin: config.origin,
  };
}

function compileIdTemplate(idTemplate: string): (params: Readonly<Record<string, string>>) => string {
  const parts = idTemplate.split(PLACEHOLDER);
  // split() with a capture group alternates literal text and parameter names.
  if (parts.length === 1) return () => idTemplate;
  if (parts.length === 3 && parts[0] === '' && parts[2] === '') {
    const name = parts[1] as string;
    return (params) => params[name] as string;
  }
  return (params) => {
    let out = '';
    for (let i = 0; i < parts.length; i++) out += i % 2 === 0 ? parts[i] : params[parts[i] as string];
    return out;
  };
}

function escapeCedarString(s: string): string {
  return s.replace(/[\\"]/g, (c) => `\\${c}`);
}

function unescapeCedarString(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}
