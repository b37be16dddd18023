// Loads and validates the config file once. The only module that reads process.env.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parse as parseYaml, parseDocument } from 'yaml';
import { DEFAULTS, isSecretHeaderName } from './defaults.js';
import { ConfigError, expectObject, isObject, readBoolean, readInteger, readString, readStringList, type JsonObject } from './fields.js';
import { parseIdentityConfig } from './identity.js';
import { parseTasksConfig } from './tasks.js';
import { parseTlsConfig, parseWorkloadApiConfig } from './workload-api.js';
import { importOpenApiRoutes } from './openapi.js';
import { loadPinnedTools } from './tools.js';
import { HTTP_METHODS, METHOD_OVERRIDE_HEADERS, type HttpMethod, type MandateConfig, type RouteConfig } from './types.js';
import { kPackageRoot } from '../package-root.js';

export { ConfigError } from './fields.js';

/** The embedded example that `mandate serve` (and `npm start`) uses when no config is named. */
export const EMBEDDED_CONFIG = resolve(kPackageRoot, 'examples/agent-gateway/mandate.yaml');

export const TOP_KEYS = [
  'listen', 'policies', 'allowEmptyPolicies', 'schema', 'entities', 'application', 'trustDomains', 'routes',
  'context', 'limits', 'explain', 'dryRun', 'response', 'watch', 'shutdown', 'decisionLog', 'identity', 'tasks', 'admin', 'tls', 'workloadApi', 'telemetry', 'shadowPolicies', 'evaluation',
] as const;
const ROUTE_KEYS = ['method', 'path', 'resource', 'body', 'tool', 'requireTask', 'protocol', 'server', 'mcpDenyStatus', 'tools', 'matrixParams', 'methodOverride'] as const;
const OPENAPI_ROUTE_KEYS = ['openapi', 'resource'] as const;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const LISTEN_ADDRESS = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export interface LoadOptions {
  /** Config file; null means the embedded example (or MANDATE_CONFIG when set). */
  readonly file: string | null;
  /** --listen from the command line; wins over MANDATE_LISTEN and the file. */
  readonly listen?: string | undefined;
  /** --admin-listen; wins over MANDATE_ADMIN_LISTEN and the file. */
  readonly adminListen?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

export function resolveConfigPath(file: string | null, env: NodeJS.ProcessEnv = process.env): string {
  if (file !== null) return resolve(file);
  const fromEnv = env['MANDATE_CONFIG'];
  return fromEnv !== undefined && fromEnv !== '' ? resolve(fromEnv) : EMBEDDED_CONFIG;
}

export function loadConfig(options: LoadOptions): MandateConfig {
  const env = options.env ?? process.env;
  const path = resolveConfigPath(options.file, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    throw new ConfigError('config', `${path} is not valid YAML or JSON: ${(err as Error).message}`);
  }
  const listenOverride = options.listen ?? (env['MANDATE_LISTEN'] || undefined);
  const adminOverride = options.adminListen ?? (env['MANDATE_ADMIN_LISTEN'] || undefined);
  try {
    return parseConfig(raw ?? {}, dirname(path), path, listenOverride, adminOverride, env['SPIFFE_ENDPOINT_SOCKET']);
  } catch (err) {
    if (err instanceof ConfigError && err.at === null) throw new ConfigError(err.field, err.detail, `${path}:${lineOfField(text, err.field)}`);
    throw err;
  }
}

/**
 * The line of a field named like "config.routes[2].method" in the config's text: the line of its
 * key, or of the nearest enclosing key that is there (a missing field is reported where its
 * parent is); 1 when nothing matches.
 */
export function lineOfField(text: string, field: string): number {
  const steps = [...field.replace(/^config\.?/, '').matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : (m[1] as string)));
  const doc = parseDocument(text);
  let node: unknown = doc.contents;
  let offset = 0;
  for (const step of steps) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === step);
      if (pair === undefined) break;
      offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step] as { range?: [number, number, number] } | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Validates a parsed config object. Relative paths resolve against baseDir. */
export function parseConfig(raw: unknown, baseDir: string, configFile: string | null, listenOverride?: string, adminListenOverride?: string, endpointSocket?: string): MandateConfig {
  const top = expectObject(raw, 'config', TOP_KEYS);

  const listen = listenOverride ?? readString(top, 'listen', 'config', DEFAULTS.listen);
  if (!LISTEN_ADDRESS.test(listen)) throw new ConfigError('config.listen', `"${listen}" is not HOST:PORT`);

  const policiesRel = readString(top, 'policies', 'config', null);
  if (policiesRel === null) throw new ConfigError('config.policies', 'is required (a directory of *.cedar files)');
  const schemaRel = readString(top, 'schema', 'config', null);
  const entitiesRel = readString(top, 'entities', 'config', null);

  const application = readString(top, 'application', 'config', DEFAULTS.application);
  const trustDomains = readStringList(top, 'trustDomains', 'config', DEFAULTS.trustDomains);
  trustDomains.forEach((td, i) => {
    if (!/^[a-z0-9._-]{1,255}$/.test(td)) throw new ConfigError(`config.trustDomains[${i}]`, `"${td}" is not a SPIFFE trust domain name`);
  });

  const context = expectObject(top['context'] ?? {}, 'config.context', ['headers', 'forwardedHost']);
  const forwardedHost = readString(context, 'forwardedHost', 'config.context', DEFAULTS.forwardedHost);
  if (forwardedHost !== 'refuse' && forwardedHost !== 'ignore') {
    throw new ConfigError('config.context.forwardedHost', `"${forwardedHost}" is neither refuse nor ignore`);
  }
  const contextHeaders = readStringList(context, 'headers', 'config.context', DEFAULTS.contextHeaders).map((name, i) => {
    const lower = name.toLowerCase();
    if (!HEADER_NAME.test(lower)) throw new ConfigError(`config.context.headers[${i}]`, `"${name}" is not a header name`);
    if (isSecretHeaderName(lower)) {
      throw new ConfigError(`config.context.headers[${i}]`, `"${name}" carries credentials and is never copied into the policy context`);
    }
    return lower;
  });

  const limitsRaw = expectObject(top['limits'] ?? {}, 'config.limits', [
    'maxPathBytes', 'maxBodyBytes', 'maxBodyDepth', 'maxBatchCalls', 'maxHeaders', 'maxHeaderBytes', 'maxMessageBytes', 'maxConcurrentStreams', 'maxConnections', 'handshakeTimeoutMs',
  ]);
  const limits = Object.freeze({
    maxPathBytes: readInteger(limitsRaw, 'maxPathBytes', 'config.limits', DEFAULTS.maxPathBytes, 1, 65536),
    maxBodyBytes: readInteger(limitsRaw, 'maxBodyBytes', 'config.limits', DEFAULTS.maxBodyBytes, 0, 1 << 20),
    maxBodyDepth: readInteger(limitsRaw, 'maxBodyDepth', 'config.limits', DEFAULTS.maxBodyDepth, 1, 128),
    maxBatchCalls: readInteger(limitsRaw, 'maxBatchCalls', 'config.limits', DEFAULTS.maxBatchCalls, 1, 1024),
    maxHeaders: readInteger(limitsRaw, 'maxHeaders', 'config.limits', DEFAULTS.maxHeaders, 1, 10_000),
    maxHeaderBytes: readInteger(limitsRaw, 'maxHeaderBytes', 'config.limits', DEFAULTS.maxHeaderBytes, 1024, 1 << 20),
    maxMessageBytes: readInteger(limitsRaw, 'maxMessageBytes', 'config.limits', DEFAULTS.maxMessageBytes, 16 * 1024, 16 << 20),
    maxConcurrentStreams: readInteger(limitsRaw, 'maxConcurrentStreams', 'config.limits', DEFAULTS.maxConcurrentStreams, 1, 10_000),
    maxConnections: readInteger(limitsRaw, 'maxConnections', 'config.limits', DEFAULTS.maxConnections, 1, 100_000),
    handshakeTimeoutMs: readInteger(limitsRaw, 'handshakeTimeoutMs', 'config.limits', DEFAULTS.handshakeTimeoutMs, 100, 120_000),
  });

  const response = expectObject(top['response'] ?? {}, 'config.response', ['principalHeader']);
  const principalHeader = readString(response, 'principalHeader', 'config.response', null) ?? (response['principalHeader'] === null ? null : DEFAULTS.principalHeader);
  if (principalHeader !== null && !HEADER_NAME.test(principalHeader)) {
    throw new ConfigError('config.response.principalHeader', `"${principalHeader}" is not a lower-case header name`);
  }

  const shutdown = expectObject(top['shutdown'] ?? {}, 'config.shutdown', ['graceMs']);
  const tls = parseTlsConfig(top['tls'], baseDir);
  const identity = parseIdentityConfig(top['identity'], baseDir, trustDomains);
  const admin = expectObject(top['admin'] ?? {}, 'config.admin', ['listen']);
  const adminListen = adminListenOverride ?? readString(admin, 'listen', 'config.admin', DEFAULTS.adminListen);
  if (adminListen !== 'off' && !LISTEN_ADDRESS.test(adminListen)) throw new ConfigError('config.admin.listen', `"${adminListen}" is not HOST:PORT or off`);

  const routes = parseRoutes(top['routes'], baseDir);

  const logRaw = expectObject(top['decisionLog'] ?? {}, 'config.decisionLog', ['sink', 'maxBufferBytes', 'input', 'allowSampleRate', 'maxFileBytes', 'maxFiles', 'redactHeaders']);
  const sampleRaw = logRaw['allowSampleRate'] ?? 1;
  if (typeof sampleRaw !== 'number' || sampleRaw < 0 || sampleRaw > 1) throw new ConfigError('config.decisionLog.allowSampleRate', 'must be a number from 0 to 1');
  const sink = readString(logRaw, 'sink', 'config.decisionLog', DEFAULTS.decisionLogSink);
  const decisionLog = Object.freeze({
    sink: sink === 'stdout' || sink === 'off' ? sink : resolve(baseDir, sink),
    maxBufferBytes: readInteger(logRaw, 'maxBufferBytes', 'config.decisionLog', DEFAULTS.decisionLogMaxBufferBytes, 1024, 1 << 30),
    input: readBoolean(logRaw, 'input', 'config.decisionLog', false),
    allowSampleRate: sampleRaw,
    maxFileBytes: readInteger(logRaw, 'maxFileBytes', 'config.decisionLog', 100 * 1024 * 1024, 1024, 2 ** 40),
    maxFiles: readInteger(logRaw, 'maxFiles', 'config.decisionLog', 5, 1, 1000),
    redactHeaders: Object.freeze(readStringList(logRaw, 'redactHeaders', 'config.decisionLog', []).map((h) => h.toLowerCase())),
  });
  const shadowRel = readString(top, 'shadowPolicies', 'config', null);
  const evaluationRaw = expectObject(top['evaluation'] ?? {}, 'config.evaluation', ['mode', 'workers', 'maxQueue', 'maxBatch', 'compiled']);
  const mode = readString(evaluationRaw, 'mode', 'config.evaluation', DEFAULTS.evaluationMode);
  if (mode !== 'inline' && mode !== 'pool' && mode !== 'auto') throw new ConfigError('config.evaluation.mode', `"${mode}" is not inline, pool or auto`);
  const evaluation = Object.freeze({
    mode: mode as 'inline' | 'pool' | 'auto',
    workers: readInteger(evaluationRaw, 'workers', 'config.evaluation', DEFAULTS.evaluationWorkers, 1, 64),
    maxQueue: readInteger(evaluationRaw, 'maxQueue', 'config.evaluation', DEFAULTS.evaluationMaxQueue, 1, 1_000_000),
    maxBatch: readInteger(evaluationRaw, 'maxBatch', 'config.evaluation', DEFAULTS.evaluationMaxBatch, 1, 1024),
    compiled: readBoolean(evaluationRaw, 'compiled', 'config.evaluation', true),
  });

  return Object.freeze({
    configFile,
    listen,
    policies: resolve(baseDir, policiesRel),
    allowEmptyPolicies: readBoolean(top, 'allowEmptyPolicies', 'config', false),
    schema: schemaRel === null ? null : resolve(baseDir, schemaRel),
    entities: entitiesRel === null ? null : resolve(baseDir, entitiesRel),
    application,
    trustDomains: Object.freeze([...trustDomains]),
    routes,
    contextHeaders: Object.freeze(contextHeaders),
    forwardedHost,
    limits,
    explain: readBoolean(top, 'explain', 'config', DEFAULTS.explain),
    dryRun: readBoolean(top, 'dryRun', 'config', false),
    principalHeader,
    watch: readBoolean(top, 'watch', 'config', DEFAULTS.watch),
    shutdownGraceMs: readInteger(shutdown, 'graceMs', 'config.shutdown', DEFAULTS.shutdownGraceMs, 0, 600_000),
    decisionLog,
    identity,
    tasks: parseTasksConfig(top['tasks'], baseDir, trustDomains),
    adminListen,
    tls,
    workloadApi: parseWorkloadApiConfig(top['workloadApi'], tls?.source === 'workloadApi' || identity.bundles.some((b) => b.kind === 'workloadApi'), endpointSocket),
    shadowPolicies: shadowRel === null ? null : resolve(baseDir, shadowRel),
    evaluation,
    telemetry: Object.freeze({ enabled: readBoolean(expectObject(top['telemetry'] ?? {}, 'config.telemetry', ['enabled']), 'enabled', 'config.telemetry', true) }),
  });
}

function parseRoutes(value: unknown, baseDir: string): readonly RouteConfig[] {
  if (value === undefined) throw new ConfigError('config.routes', 'is required: without routes every request is denied with no_route');
  if (!Array.isArray(value)) throw new ConfigError('config.routes', 'must be a list');
  const routes: RouteConfig[] = [];
  value.forEach((item: unknown, i) => {
    const field = `config.routes[${i}]`;
    if (isObject(item) && 'openapi' in item) {
      const entry = expectObject(item, field, OPENAPI_ROUTE_KEYS);
      const file = resolve(baseDir, readString(entry, 'openapi', field, ''));
      routes.push(...importOpenApiRoutes(file, field, readString(entry, 'resource', field, null)));
      return;
    }
    routes.push(parseRoute(expectObject(item, field, ROUTE_KEYS), field, baseDir));
  });
  return Object.freeze(routes.map((r) => Object.freeze(r)));
}

function readMethodOverride(entry: JsonObject, field: string): string | null {
  const header = readString(entry, 'methodOverride', field, null);
  if (header === null) return null;
  const lower = header.toLowerCase();
  if (!(METHOD_OVERRIDE_HEADERS as readonly string[]).includes(lower)) {
    throw new ConfigError(`${field}.methodOverride`, `must be one of ${METHOD_OVERRIDE_HEADERS.join(', ')}`);
  }
  return lower;
}

function parseRoute(entry: JsonObject, field: string, baseDir: string): RouteConfig {
  const method = readString(entry, 'method', field, '').toUpperCase();
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new ConfigError(`${field}.method`, `must be one of ${HTTP_METHODS.join(', ')}`);
  }
  const path = readString(entry, 'path', field, '');
  if (path === '') throw new ConfigError(`${field}.path`, 'is required');
  const protocol = readString(entry, 'protocol', field, 'http');
  if (protocol !== 'http' && protocol !== 'mcp') throw new ConfigError(`${field}.protocol`, 'must be http or mcp');
  let mcp: RouteConfig['mcp'] = null;
  if (protocol === 'mcp') {
    if (method !== 'POST') throw new ConfigError(`${field}.method`, 'an MCP endpoint (Streamable HTTP) takes POST');
    const server = readString(entry, 'server', field, null);
    if (server === null || !/^[A-Za-z0-9._-]{1,64}$/.test(server)) throw new ConfigError(`${field}.server`, 'an MCP route needs a server name of letters, digits, ".", "-", "_"');
    const denyStatus = readInteger(entry, 'mcpDenyStatus', field, 200, 200, 403);
    if (denyStatus !== 200 && denyStatus !== 403) throw new ConfigError(`${field}.mcpDenyStatus`, 'must be 200 or 403');
    const toolsFile = readString(entry, 'tools', field, null);
    mcp = { server, denyStatus, tools: toolsFile === null ? null : loadPinnedTools(resolve(baseDir, toolsFile), `${field}.tools`) };
  } else if (entry['server'] !== undefined || entry['mcpDenyStatus'] !== undefined || entry['tools'] !== undefined) {
    throw new ConfigError(`${field}.server`, 'only MCP routes (protocol: mcp) take server, mcpDenyStatus and tools');
  }
  return {
    method: method as HttpMethod,
    path,
    mcp,
    resource: readString(entry, 'resource', field, null),
    body: readBoolean(entry, 'body', field, false),
    tool: readString(entry, 'tool', field, null),
    requireTask: entry['requireTask'] === undefined || entry['requireTask'] === null ? null : readBoolean(entry, 'requireTask', field, false),
    matrixParams: readBoolean(entry, 'matrixParams', field, false),
    methodOverride: readMethodOverride(entry, field),
    origin: field,
  };
}

/** MANDATE_LOG_LEVEL, when set (serve's --log-level wins over it). */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const level = env['MANDATE_LOG_LEVEL'];
  return level === undefined || level === '' ? undefined : level;
}
