// The validated, frozen configuration every other module receives. Built once by load.ts.

import type { IdentityConfig } from './identity.js';
import type { TasksConfig } from './tasks.js';
import type { PinnedTools } from './tools.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];
/** Headers by which clients ask an upstream to take another method than the request's. */
export const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const;

export interface RouteConfig {
  readonly method: HttpMethod;
  /** Route template: literal segments and whole-segment parameters, e.g. /tickets/{id}/comments. */
  readonly path: string;
  /** Cedar resource, e.g. Ticket::"{id}"; default Application::"<application>". */
  readonly resource: string | null;
  /** Put the parsed JSON body into context.body (Envoy must send it: with_request_body). */
  readonly body: boolean;
  /** The tool this route represents (context.tool), matched against a task's granted tools. */
  readonly tool: string | null;
  /** Deny with task_required when the request carries no task token. null (the default): only
   *  tool calls need one, i.e. a route with a `tool`, and MCP tools/call. */
  readonly requireTask: boolean | null;
  /** The upstream reads ";" parameters in path segments (matrix parameters): decide on the path without them. */
  readonly matrixParams: boolean;
  /** The method-override header the upstream honours (x-http-method-override, x-http-method or
   *  x-method-override); the overriding method is the one decided. null: any such header is refused. */
  readonly methodOverride: string | null;
  /** An MCP endpoint (Streamable HTTP): each JSON-RPC call in the body is decided (docs/tool-calls.md). */
  readonly mcp: {
    readonly server: string;
    readonly denyStatus: 200 | 403;
    /** The pinned tool list (`tools:`): tools/call of another tool, or with arguments its inputSchema refuses, is a bad_request. null: any tool, any arguments. */
    readonly tools: PinnedTools | null;
  } | null;
  /** Where the route came from, for error messages: "config.routes[2]" or "openapi.yaml GET /x". */
  readonly origin: string;
}

export interface Limits {
  readonly maxPathBytes: number;
  readonly maxBodyBytes: number;
  readonly maxBodyDepth: number;
  /** Calls in one MCP JSON-RPC batch: each is one evaluation. */
  readonly maxBatchCalls: number;
  /** Headers in one CheckRequest, and their names and values added up in bytes. */
  readonly maxHeaders: number;
  readonly maxHeaderBytes: number;
  /** gRPC messages larger than this are refused before they are buffered (RESOURCE_EXHAUSTED). */
  readonly maxMessageBytes: number;
  /** HTTP/2 streams open at once on one connection, and connections open at once. */
  readonly maxConcurrentStreams: number;
  readonly maxConnections: number;
  /** A new Check connection must finish its TLS handshake (or, plaintext, send the HTTP/2 preface) within this. */
  readonly handshakeTimeoutMs: number;
}

export interface MandateConfig {
  /** Absolute path of the config file, or null for the built-in defaults. */
  readonly configFile: string | null;
  readonly listen: string;
  /** Absolute path of the directory holding *.cedar files. */
  readonly policies: string;
  /** A policy directory with no policies is refused (it would deny everything) unless this says it is meant. */
  readonly allowEmptyPolicies: boolean;
  readonly schema: string | null;
  readonly entities: string | null;
  /** Default resource: Application::"<application>". */
  readonly application: string;
  readonly trustDomains: readonly string[];
  readonly routes: readonly RouteConfig[];
  /** Request headers copied into context.http.headers (lower-case names). */
  readonly contextHeaders: readonly string[];
  /**
   * A request whose X-Forwarded-Host or Forwarded `host=` names another host than its own:
   * `refuse` (bad_request: an upstream that trusts those headers serves another host than the
   * one decided on), or `ignore` when no upstream behind this Mandate reads them.
   */
  readonly forwardedHost: 'refuse' | 'ignore';
  readonly limits: Limits;
  /** Put determining policy ids into deny bodies. Off by default: they describe the policy set. */
  readonly explain: boolean;
  /**
   * Decide and record every request, but answer every one allowed (OPA-Envoy's dry-run), for
   * rolling out a first policy set. Loud: a warning at start, `dryRun` in every decision-log
   * line, on spans, in /v1/status and the mandate_dry_run gauge.
   */
  readonly dryRun: boolean;
  /** Header set on allowed requests to the verified principal (removed when anonymous); null: none. */
  readonly principalHeader: string | null;
  /** Reload policies when the policy directory, schema or entities file changes. */
  readonly watch: boolean;
  /** How long in-flight calls may take to finish after SIGTERM before the server is forced down. */
  readonly shutdownGraceMs: number;
  readonly identity: IdentityConfig;
  /**
   * Serve gRPC over TLS. From files (watched, reloaded on change; with clientCa, client
   * certificates are required) or from the SPIFFE Workload API (Mandate's own X.509-SVID, and
   * client X.509-SVIDs verified against their own trust domain's bundle).
   */
  readonly tls: TlsConfig | null;
  /** Where the SPIFFE Workload API is (tls.workloadApi, identity.bundles[].workloadApi); null when nothing uses it. */
  readonly workloadApi: WorkloadApiConfig | null;
  /** Metrics and traces (docs/observability.md); off: nothing is measured or exported. */
  readonly telemetry: { readonly enabled: boolean };
  /** Admin HTTP (JWKS, health), or 'off'. */
  readonly adminListen: string;
  /** null when task tokens are not enabled. */
  readonly tasks: TasksConfig | null;
  /** Where Cedar runs (docs/performance.md): on the main thread, or in a piscina worker pool. */
  readonly evaluation: {
    /** auto: the pool, but inline when nothing else is going on (pool.ts inlineWhenQuiet). */
    readonly mode: 'inline' | 'pool' | 'auto';
    readonly workers: number;
    /** Evaluations waiting or running past which a request is denied `overloaded` at once. */
    readonly maxQueue: number;
    /** Requests sent to a worker in one message, at most. */
    readonly maxBatch: number;
    /** Policies compiled to JavaScript decide on the main thread where proven exact (policy/engine.ts); false: cedar-wasm only. */
    readonly compiled: boolean;
  };
  readonly decisionLog: {
    /** 'stdout', 'off', or an absolute file path (appended to). */
    readonly sink: string;
    /** Queue bound: past it, lines are dropped and counted rather than delay a decision. */
    readonly maxBufferBytes: number;
    /** Log the Cedar request with each line (for mandate replay). */
    readonly input: boolean;
    readonly allowSampleRate: number;
    readonly maxFileBytes: number;
    readonly maxFiles: number;
    readonly redactHeaders: readonly string[];
  };
  /** A candidate policy directory evaluated beside the enforced one; its answer is never used. */
  readonly shadowPolicies: string | null;
}

export type TlsConfig =
  | {
      readonly source: 'files';
      readonly cert: string;
      readonly key: string;
      readonly clientCa: string | null;
      /** SPIFFE IDs of the ext_authz clients (Envoy) allowed to call Check; empty: any client the CA vouches for. */
      readonly checkClients: readonly string[];
    }
  | { readonly source: 'workloadApi'; readonly checkClients: readonly string[] };

export interface WorkloadApiConfig {
  /** A grpc-js target: unix:/path or host:port (from unix:///path or tcp://ip:port). */
  readonly target: string;
  /** The address as configured, for messages. */
  readonly address: string;
  /** Which of the workload's X.509-SVIDs Mandate serves with; null: the first (the default identity). */
  readonly spiffeId: string | null;
  /** How long start waits for the first SVID and bundles before it gives up. */
  readonly timeoutMs: number;
}
