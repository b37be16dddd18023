// The gRPC transport: ext_authz Check, Health and the Tasks API on one port, served by our own
// gRPC server over our own HTTP/2 (grpc-server.ts, http2.ts). Each Check runs the pipeline and always answers
// with a CheckResponse; a gRPC error is reserved for failures to even build one (Envoy then
// applies failure_mode_allow: false and denies).

import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { bindCheckPort } from './bind.js';
import type { H2Stats } from './http2.js';
import type { PeerCertificate } from 'node:tls';
import { GrpcServer, GRPC_STATUS as GrpcStatus, type ServerCall, type UnaryCallback } from './grpc-server.js';
import { EvaluationPool, type PoolStats } from '../policy/pool.js';
import { INLINE_EVALUATOR, type Evaluator } from '../policy/engine.js';
import { decideNow, createDecisionState, type DecisionState } from '../check/pipeline.js';
import { AllowFrames } from './frames.js';
import { traceHeaders, type CheckRequestMessage } from '../check/decode.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { ShadowDisagreement, ShadowEvaluator } from '../policy/shadow.js';
import type { RouteTable } from '../check/routes.js';
import type { Identifier } from '../check/identify.js';
import type { WorkloadGroups } from '../identity/groups.js';
import type { MandateConfig } from '../config/types.js';
import type { PolicyStore } from '../policy/store.js';
import type { Logger } from '../telemetry/log.js';
import { HealthService, SERVING_STATUS } from './health.js';
import { AUTHORIZATION_SERVICE_SERVED, AUTHORIZATION_SERVICE_NAME, HEALTH_SERVICE, TASKS_SERVICE, TASKS_SERVICE_NAME } from './protos.js';
import { tasksImplementation } from './tasks.js';
import { TaskManager } from '../tasks/manager.js';
import type { TaskDeps } from '../tasks/deps.js';
import type { Decision } from '../core/decision.js';
import { TlsSource } from '../identity/tls-source.js';
import { soleUriSan } from '../identity/x509.js';
import type { WorkloadApiClient } from '../identity/workload-api.js';
import { createTlsFront, type TlsFront } from './tls-front.js';

export interface MandateServer {
  /** The bound address, e.g. 127.0.0.1:9191 (the real port when 0 was asked for). */
  readonly address: string;
  readonly health: HealthService;
  state(): DecisionState;
  /** The evaluation pool's counters (evaluation.mode pool), or null when evaluation is inline. */
  poolStats(): PoolStats | null;
  /** HTTP/2 errors sent on the Check port's connections, by code (http2.ts). */
  http2Errors(): H2Stats;
  /** What the Check port serves TLS with, or null for plaintext. */
  tls(): TlsStatus | null;
  /** Re-reads TLS files now (SIGHUP); the Workload API needs no nudge. */
  reloadTls(): void;
  /** Health NOT_SERVING, refuse new calls, let in-flight calls finish within graceMs. */
  shutdown(graceMs: number): Promise<'graceful' | 'forced'>;
}

export interface TlsStatus {
  readonly source: 'files' | 'workloadApi';
  readonly spiffeId: string | null;
  readonly notAfter: string;
  readonly refusedClients: number;
  readonly failedHandshakes: number;
}

export interface StartOptions {
  readonly config: MandateConfig;
  readonly store: PolicyStore;
  readonly routes: RouteTable;
  readonly identifier: Identifier;
  readonly groups: WorkloadGroups;
  readonly tasks: TaskDeps | null;
  readonly logger: Logger;
  readonly telemetry?: Telemetry | null;
  /** Evaluated after each answer is sent; its disagreements go to onShadowDisagreement. */
  readonly shadow?: ShadowEvaluator | null;
  readonly onShadowDisagreement?: (d: ShadowDisagreement) => void;
  /** Called after each answer is sent, with the time the decision took. */
  readonly onDecision?: (decision: Decision, latencyUs: number) => void;
  /** The Check port, already bound (bind.ts); else config.listen is bound here. */
  readonly listener?: NetServer;
  /** The SPIFFE Workload API (config.workloadApi), for tls.workloadApi. */
  readonly workloadApi?: WorkloadApiClient | null;
}

export async function startServer(options: StartOptions): Promise<MandateServer> {
  const { config, store, routes, identifier, groups, tasks, logger } = options;
  const telemetry = options.telemetry ?? null;
  // evaluation.mode pool: Cedar runs in worker threads (src/policy/pool.ts); versions are pushed on reload.
  const pool = config.evaluation.mode === 'inline' ? null : new EvaluationPool({ ...config.evaluation, inlineWhenQuiet: config.evaluation.mode === 'auto' });
  const evaluator: Evaluator = pool ?? INLINE_EVALUATOR;
  pool?.pushVersion(store.current);
  let state = createDecisionState(config, routes, store.current, identifier, groups, tasks, evaluator);
  store.onSwap((engine) => {
    pool?.pushVersion(engine);
    state = createDecisionState(config, routes, engine, identifier, groups, tasks, evaluator);
  });

  const health = new HealthService(tasks === null ? [AUTHORIZATION_SERVICE_NAME] : [AUTHORIZATION_SERVICE_NAME, TASKS_SERVICE_NAME]);
  const limits = config.limits;
  // A message's length prefix is read first and one over the limit refused before it is
  // buffered (RESOURCE_EXHAUSTED): memory held for unfinished messages is at most
  // connections x streams x this (docs/configuration.md, limits).
  const server = new GrpcServer({ maxMessageBytes: limits.maxMessageBytes, maxConcurrentStreams: limits.maxConcurrentStreams });

  const checkClients = config.tls === null || config.tls.checkClients.length === 0 ? null : new Set(config.tls.checkClients);
  // Allowed answers from a template per workload and policy version (frames.ts).
  const allowFrames = new AllowFrames(config);
  /** Sends the decision's answer, then records it. */
  const answer = (decision: Decision, started: bigint, span: ReturnType<Telemetry['startCheck']>, callback: UnaryCallback<unknown>): void => {
    let response: unknown;
    try {
      response = allowFrames.answer(decision);
    } catch (err) {
      logger.error('failed to build a CheckResponse', { decisionId: decision.decisionId, error: String(err) });
      callback({ code: GrpcStatus.INTERNAL, details: 'internal_error' });
      return;
    }
    callback(null, response);
    if (decision.code === 'internal_error') {
      logger.error('decision failed', { decisionId: decision.decisionId, message: decision.message });
    }
    // The answer is sent. What follows only records it: a failure here is logged, never thrown
    // out of the handler (from a promise's callback, an unhandled rejection would take the process down).
    try {
      const latencyUs = Number(process.hrtime.bigint() - started) / 1000;
      telemetry?.recordDecision(decision, latencyUs, span);
      options.onDecision?.(decision, latencyUs);
      const shadow = options.shadow;
      if (shadow != null && decision.policyDecision !== null) {
        // The shadow set never delays or changes a decision.
        setImmediate(() => {
          try {
            const disagreement = shadow.compare(decision);
            if (disagreement !== null) options.onShadowDisagreement?.(disagreement);
          } catch (err) {
            logger.error('shadow evaluation failed', { decisionId: decision.decisionId, error: String(err) });
          }
        });
      }
    } catch (err) {
      logger.error('recording a decision failed', { decisionId: decision.decisionId, error: String(err) });
    }
  };
  server.addService(AUTHORIZATION_SERVICE_SERVED, {
    Check: (call: ServerCall<CheckRequestMessage>, callback: UnaryCallback<unknown>) => {
      const started = process.hrtime.bigint();
      // Only the configured ext_authz clients may ask: anyone else who reaches the port could
      // probe the policy or spend its capacity. A gRPC error, which Envoy treats as a deny.
      if (checkClients !== null) {
        const refused = refuseCheckClient(call.getAuthContext().sslPeerCertificate, checkClients);
        if (refused !== null) {
          callback({ code: GrpcStatus.PERMISSION_DENIED, details: refused });
          return;
        }
      }
      // Trace headers are read only when spans are recorded (tracing is off by default).
      const span = telemetry?.tracing === true ? telemetry.startCheck(traceHeaders(call.request)) : null;
      // Answered in this turn when every step of the decision answers from memory (decideNow);
      // a rejection or a throw here is a bug: the gRPC server answers INTERNAL (a deny to Envoy).
      const decision = decideNow(call.request, state, Date.now(), call.getDeadline());
      if (decision instanceof Promise) return decision.then((d) => answer(d, started, span, callback));
      answer(decision, started, span, callback);
      return undefined;
    },
  });
  server.addService(HEALTH_SERVICE, health.implementation());
  let storeWatch: NodeJS.Timeout | undefined;
  if (tasks !== null) {
    server.addService(TASKS_SERVICE, tasksImplementation(new TaskManager(() => state, tasks), identifier, tasks.keys, logger, telemetry));
  }

  // Mandate's own certificate first: without it there is nothing to serve TLS with.
  const tlsSource = await openTlsSource(config, options.workloadApi ?? null, logger);

  // A replica that starts deciding before its first connection to the task store would deny
  // every task-bound request meanwhile: wait for it, briefly (it stays unhealthy otherwise).
  if (tasks !== null) await tasks.store.ready(3000);
  // Our own listener hands each connection to the gRPC server, so that connections can be
  // capped (net.Server.maxConnections: the next one is closed at once). With TLS, the handshake
  // is ours too (tls-front.ts), so the gRPC server receives finished TLS sockets.
  const listener = options.listener ?? (await bindCheckPort(config.listen));
  // The port is ours: a missing task key file may be written now (never before a bind succeeded).
  tasks?.keys.ensureSigningKey();
  const front: TlsFront | null = tlsSource === null ? null : createTlsFront(tlsSource, (socket) => server.injectConnection(socket), logger, limits.handshakeTimeoutMs);
  if (front === null) {
    listener.on('connection', (socket) => {
      guardPreface(socket, limits.handshakeTimeoutMs);
      server.injectConnection(socket);
    });
  }
  else listener.on('connection', (socket) => front.accept(socket));
  listener.maxConnections = limits.maxConnections;
  const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
  const port = (listener.address() as AddressInfo).port;
  health.setAll(SERVING_STATUS.SERVING);
  if (tasks !== null) {
    // The Tasks service is only as available as its state store; Check stays SERVING and denies
    // task-bound requests with state_unavailable meanwhile.
    const report = (): void => health.set(TASKS_SERVICE_NAME, tasks.store.healthy() ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING);
    report();
    storeWatch = setInterval(report, 1000);
    storeWatch.unref();
  }

  return {
    address: `${host}:${port}`,
    health,
    state: () => state,
    poolStats: () => pool?.stats() ?? null,
    http2Errors: () => server.http2Stats,
    tls: () => {
      const m = tlsSource?.current;
      if (tlsSource == null || m == null) return null;
      return { source: tlsSource.kind, spiffeId: m.spiffeId, notAfter: m.notAfter.toISOString(), refusedClients: front?.stats.refused ?? 0, failedHandshakes: front?.stats.handshakeFailures ?? 0 };
    },
    reloadTls: () => tlsSource?.reloadFiles(),
    shutdown: (graceMs) =>
      new Promise<'graceful' | 'forced'>((resolveShutdown) => {
        clearInterval(storeWatch);
        front?.close();
        tlsSource?.close();
        listener.close();
        health.setAll(SERVING_STATUS.NOT_SERVING);
        health.endWatches();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolveShutdown('forced');
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolveShutdown('graceful');
        });
      }).then(async (how) => {
        await pool?.close();
        return how;
      }),
  };
}

/**
 * The Check port's TLS material, loaded and ready (null: plaintext): files are read now, the
 * Workload API is waited for (config.workloadApi.timeoutMs). Changes are logged as they come.
 */
async function openTlsSource(config: MandateConfig, api: WorkloadApiClient | null, logger: Logger): Promise<TlsSource | null> {
  if (config.tls === null) return null;
  const events = {
    onUpdate: (m: { spiffeId: string | null; notAfter: Date }) => logger.info('TLS certificate loaded', { spiffeId: m.spiffeId, notAfter: m.notAfter.toISOString() }),
    onError: (message: string) => logger.error('TLS material not updated; the previous certificate stays in use', { message }),
  };
  if (config.tls.source === 'files') return TlsSource.fromFiles(config.tls, events);
  if (api === null || config.workloadApi === null) throw new Error('tls.workloadApi without a Workload API client');
  const source = TlsSource.fromWorkloadApi(api, { spiffeId: config.workloadApi.spiffeId, trustDomains: config.trustDomains }, events);
  try {
    await source.ready(config.workloadApi.timeoutMs, `the Workload API at ${config.workloadApi.address}`);
  } catch (err) {
    source.close();
    throw err;
  }
  return source;
}

/** The client connection preface of HTTP/2 (RFC 9113 §3.4) is 24 octets. */
const HTTP2_PREFACE_BYTES = 24;

/**
 * A plaintext connection that has not sent the HTTP/2 preface within timeoutMs is closed.
 * Only the socket's byte count is looked at: its bytes are the HTTP/2 connection's (http2.ts).
 */
function guardPreface(socket: Socket, timeoutMs: number): void {
  const timer = setTimeout(() => {
    // A reset: the client sees the connection refused at once, not a close it may wait on.
    if (socket.bytesRead < HTTP2_PREFACE_BYTES) socket.resetAndDestroy();
  }, timeoutMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Why a TLS peer may not call Check, or null. X.509-SVID: exactly one URI SAN, the SPIFFE ID. */
function refuseCheckClient(peer: PeerCertificate | undefined, allowed: ReadonlySet<string>): string | null {
  const uri = soleUriSan(peer?.subjectaltname);
  if (uri === null) return 'the ext_authz client presented no X.509-SVID (tls.checkClients)';
  return allowed.has(uri) ? null : `the ext_authz client ${uri} is not in tls.checkClients`;
}
