import { availableParallelism } from 'node:os';

// Every default in one table; docs/configuration.md mirrors it (a test checks the two agree).

export const DEFAULTS = Object.freeze({
  listen: '127.0.0.1:9191',
  application: 'default',
  trustDomains: [] as readonly string[],
  contextHeaders: ['content-type', 'user-agent', 'x-request-id'] as readonly string[],
  forwardedHost: 'refuse' as 'refuse' | 'ignore',
  maxPathBytes: 8192,
  maxBodyBytes: 8192,
  maxBodyDepth: 32,
  // A JSON-RPC batch of 192 calls cost 45x a single call: each call is one evaluation.
  maxBatchCalls: 16,
  // Envoy's own defaults: 100 headers (max_headers_count), 60 KiB of them (max_request_headers_kb).
  maxHeaders: 100,
  maxHeaderBytes: 60 * 1024,
  // A CheckRequest is the headers plus at most max_request_bytes of body plus the peer
  // certificate, a few KB in practice: 128 KiB holds Envoy's default header limit (60 KiB) and a
  // 64 KiB body. grpc-js buffers a message whole before decoding it: this bounds what one
  // unfinished message can hold.
  maxMessageBytes: 128 * 1024,
  // Envoy multiplexes Checks over one HTTP/2 connection per worker thread (per sidecar in Istio).
  maxConcurrentStreams: 100,
  maxConnections: 1024,
  // A connection that has not finished its TLS handshake, or (plaintext) not sent the HTTP/2
  // connection preface, by then is cut off: a silent client holds a slot of maxConnections.
  handshakeTimeoutMs: 10_000,
  explain: false,
  principalHeader: 'x-mandate-principal' as string | null,
  watch: true,
  shutdownGraceMs: 5000,
  decisionLogSink: 'stdout',
  adminListen: '127.0.0.1:9192',
  decisionLogMaxBufferBytes: 1 << 20,
  // Measured (docs/performance.md): the pool serves 1.5-2.5x the Checks of inline evaluation from
  // 16 requests in flight on, but costs ~0.4 ms per request at one in flight; auto (the pool,
  // with a request that comes alone evaluated inline) matched inline at one in flight and the
  // pool under load in four of five same-run comparisons. One worker per core beyond the one
  // the main thread (gRPC, decoding, identity, tasks) keeps busy.
  evaluationMode: 'auto' as 'inline' | 'pool' | 'auto',
  evaluationWorkers: Math.max(1, availableParallelism() - 1),
  evaluationMaxQueue: 1024,
  evaluationMaxBatch: 32,
});

// Header names that carry credentials never enter the Cedar context (they would reach decision
// logs and explain output). Matched exactly, and by substring for the patterns.
export const SECRET_HEADER_NAMES: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'txn-token',
  'x-forwarded-client-cert',
];
export const SECRET_HEADER_PATTERNS: readonly string[] = ['token', 'secret', 'password', 'api-key', 'apikey', 'session'];

export function isSecretHeaderName(name: string): boolean {
  const lower = name.toLowerCase();
  return SECRET_HEADER_NAMES.includes(lower) || SECRET_HEADER_PATTERNS.some((p) => lower.includes(p));
}
