// OpenTelemetry for the decision point: metrics (Prometheus text on the admin port's /metrics;
// OTLP for traces when the standard OTEL_* variables ask for it) and one span per Check, child
// of the trace the request carries (W3C traceparent/tracestate, or B3). Nothing is built for a
// span that does not record; metrics are counters and one histogram per decision, plus the
// Node runtime's (runtime-metrics.ts). Instruments are named without units, the unit is the
// instrument's; Prometheus names get the unit as a suffix (OpenTelemetry's Prometheus
// compatibility rules: s -> _seconds, By -> _bytes, 1 -> _ratio), which this exporter version
// does not add itself. "No code" (an allow) is an absent attribute: no `code` label, no
// `mandate.code` on the span, null in the decision log.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type Context, type Span, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationType, MeterProvider, type ViewOptions } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerRuntimeMetrics, RUNTIME_UNITS } from './runtime-metrics.js';
import { KeyedHistogram, KeyedHistogramProducer } from './histograms.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Decision } from '../core/decision.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kPackageRoot } from '../package-root.js';

/** The version in package.json: service.version on every span and metric. */
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(kPackageRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** RPC semantic conventions: spans are named "<package.service>/<method>", with rpc.* attributes. */
const AUTHORIZATION = 'envoy.service.auth.v3.Authorization';
const TASKS = 'mandate.tasks.v1.Tasks';

/**
 * The OTLP protocol for traces (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL):
 * http/protobuf by default, as the OpenTelemetry specification has it; http/json on request.
 * grpc is refused at start with one line rather than silently sent another way.
 */
export function otlpProtocol(env: NodeJS.ProcessEnv): 'http/protobuf' | 'http/json' {
  const asked = env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? 'http/protobuf';
  if (asked === 'http/protobuf' || asked === 'http/json') return asked;
  throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL=${asked} is not supported: use http/protobuf (the default) or http/json`);
}

/**
 * The OTLP trace exporter the standard variables ask for (OTEL_EXPORTER_OTLP_ENDPOINT, or
 * OTEL_TRACES_EXPORTER=otlp), or null. Loaded only then: the two exporters take ~120 ms to
 * import, a tenth of a start.
 */
export async function otlpTraceExporter(env: NodeJS.ProcessEnv): Promise<SpanExporter | null> {
  const wanted = env['OTEL_TRACES_EXPORTER'] === 'otlp' || (env['OTEL_TRACES_EXPORTER'] === undefined && (env['OTEL_EXPORTER_OTLP_ENDPOINT'] ?? env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) !== undefined);
  if (!wanted) return null;
  if (otlpProtocol(env) === 'http/json') return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
}

// Fine enough for tens of microseconds, wide enough for a slow Redis (seconds).
const LATENCY_BUCKETS_SECONDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const GC_BUCKETS_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const PROMETHEUS_UNIT_SUFFIX: Readonly<Record<string, string>> = { s: 'seconds', By: 'bytes', '1': 'ratio' };
/** Every instrument with a unit: Mandate's own and the runtime's. */
const UNITS: Readonly<Record<string, string>> = { 'mandate.check.duration': 's', 'mandate.evaluation.duration': 's', 'mandate.tls.certificate.not_after': 's', ...RUNTIME_UNITS };
const BUCKETS: Readonly<Record<string, readonly number[]>> = { 'v8js.gc.duration': GC_BUCKETS_SECONDS };

/** An instrument's Prometheus name: its unit as a suffix. */
function prometheusName(instrumentName: string): string {
  const unit = UNITS[instrumentName];
  return unit === undefined ? instrumentName : `${instrumentName}_${PROMETHEUS_UNIT_SUFFIX[unit] ?? unit}`;
}

/** Kept by KeyedHistogram (histograms.ts) under their Prometheus names: no SDK instrument, no view. */
const KEYED = new Set(['mandate.check.duration', 'mandate.evaluation.duration']);

/** The views that give each instrument with a unit its Prometheus name, and histograms their buckets. */
function prometheusViews(): ViewOptions[] {
  return Object.keys(UNITS)
    .filter((instrumentName) => !KEYED.has(instrumentName))
    .map((instrumentName) => {
      const buckets = BUCKETS[instrumentName];
      return {
        instrumentName,
        name: prometheusName(instrumentName),
        ...(buckets === undefined ? {} : { aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [...buckets] } } }),
      };
    });
}

const ALLOW: Attributes = Object.freeze({ decision: 'allow' });
const DENY: Attributes = Object.freeze({ decision: 'deny' });
const NO_ATTRIBUTES: Attributes = Object.freeze({});

export interface Gauges {
  /** Counters kept by other modules, read at collection time. */
  readonly jwtCache?: () => { hits: number; misses: number; coalesced: number } | null;
  readonly xfccIgnored?: () => number;
  readonly certificateCacheHits?: () => number;
  readonly decisionLog?: () => { written: number; dropped: number; failed: number } | null;
  readonly taskStoreHealthy?: () => boolean | null;
  readonly shadow?: () => { evaluated: number; disagreements: number } | null;
  /** Evaluations by where they ran (policy/engine.ts EVALUATION_PATHS, the pool's count). */
  readonly evaluations?: () => { compiled: number; wasmInline: number; wasmPool: number };
  /** Config dryRun: 1 while every request is let through. */
  readonly dryRun?: () => boolean;
  /** HTTP/2 errors sent on the Check port: GOAWAYs for protocol errors and streams reset, by code (server/http2.ts). */
  readonly http2Errors?: () => readonly { readonly scope: 'connection' | 'stream'; readonly code: string; readonly count: number }[];
  /** The Check port's TLS: when the served certificate expires, and clients refused (null: plaintext). */
  readonly tls?: () => { notAfterSeconds: number; refusedClients: number; failedHandshakes: number } | null;
}

export interface TelemetryOptions {
  /** Extra span processors (tests pass an in-memory exporter). */
  readonly spanProcessors?: readonly SpanProcessor[];
  /** Where spans go (otlpTraceExporter); none: spans only for spanProcessors. */
  readonly spanExporter?: SpanExporter | null;
  readonly env?: NodeJS.ProcessEnv;
  readonly serviceVersion?: string;
}

const headerGetter: TextMapGetter<ReadonlyMap<string, string>> = {
  get: (carrier, key) => carrier.get(key),
  keys: (carrier) => [...carrier.keys()],
};

export class Telemetry {
  private readonly meterProvider: MeterProvider;
  private readonly prometheus: PrometheusExporter;
  private readonly tracerProvider: BasicTracerProvider | null;
  private readonly tracer: Tracer | null;
  private readonly propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new B3Propagator()] });
  /** Decisions so far by "decision code" (see the constructor): the attributes built once per key. */
  private readonly decisions = new Map<string, { readonly attributes: Readonly<Record<string, string>>; count: number }>();
  private readonly checkDuration: KeyedHistogram;
  private readonly evaluationDuration: KeyedHistogram;
  private readonly reloads;
  private readonly taskApi;
  private readonly storeErrors;
  private readonly stopRuntimeMetrics: () => void;

  constructor(gauges: Gauges, options: TelemetryOptions = {}) {
    const env = options.env ?? process.env;
    const resource = resourceFromAttributes({ 'service.name': env['OTEL_SERVICE_NAME'] ?? 'mandate', 'service.version': options.serviceVersion ?? PACKAGE_VERSION });
    // The per-Check histograms are kept outside the SDK (histograms.ts), under their Prometheus names.
    this.checkDuration = new KeyedHistogram(prometheusName('mandate.check.duration'), 'Time to decide one Check, from request to response', 's', LATENCY_BUCKETS_SECONDS);
    this.evaluationDuration = new KeyedHistogram(prometheusName('mandate.evaluation.duration'), 'Time spent in Cedar evaluation for one Check', 's', LATENCY_BUCKETS_SECONDS);
    this.prometheus = new PrometheusExporter({ preventServerStart: true, metricProducers: [new KeyedHistogramProducer([this.checkDuration, this.evaluationDuration], resource, { name: 'mandate' })] });
    this.meterProvider = new MeterProvider({ resource, readers: [this.prometheus], views: prometheusViews() });
    const meter = this.meterProvider.getMeter('mandate');
    // Counted here and observed at collection: a synchronous counter hashes its attributes on
    // every add (~1 us per Check); these keys are the decision and the code, a bounded set.
    const decisions = meter.createObservableCounter('mandate.decisions', { description: 'Decisions, by decision and reason code' });
    meter.addBatchObservableCallback((r) => {
      for (const d of this.decisions.values()) r.observe(decisions, d.count, d.attributes);
    }, [decisions]);
    this.stopRuntimeMetrics = registerRuntimeMetrics(meter);
    this.reloads = meter.createCounter('mandate.policy.reloads', { description: 'Policy reloads, by result' });
    this.taskApi = meter.createCounter('mandate.task.api.calls', { description: 'Task API calls, by method and result (code)' });
    this.storeErrors = meter.createCounter('mandate.task.store.errors', { description: 'Errors reported by the task state store' });
    const jwt = meter.createObservableCounter('mandate.identity.jwt_cache', { description: 'JWT-SVID verifications, by cache result' });
    const xfcc = meter.createObservableCounter('mandate.identity.xfcc_ignored', { description: 'XFCC headers from untrusted hops, ignored' });
    const certs = meter.createObservableCounter('mandate.identity.certificate_cache_hits', { description: 'Peer certificates served from the X.509-SVID cache' });
    const log = meter.createObservableCounter('mandate.decision_log.lines', { description: 'Decision log lines, by result' });
    const store = meter.createObservableGauge('mandate.task.store.up', { description: '1 when the task state store answers, 0 when not' });
    const shadowCounter = meter.createObservableCounter('mandate.shadow', { description: 'Shadow policy evaluations, and disagreements with the enforced set' });
    const dryRun = meter.createObservableGauge('mandate.dry_run', { description: '1 when serving in dry run: every request is answered allowed whatever policy decides' });
    const tlsNotAfter = meter.createObservableGauge('mandate.tls.certificate.not_after', { unit: 's', description: 'When the certificate the Check port serves expires (Unix time): alert when it nears, a rotation did not arrive' });
    const tlsRefused = meter.createObservableCounter('mandate.tls.refused', { description: 'TLS clients refused, by stage: handshake (failed or timed out), peer (not an X.509-SVID of a trusted domain, or no HTTP/2)' });
    const http2Errors = meter.createObservableCounter('mandate.http2.errors', { description: 'HTTP/2 errors the Check port sent: a connection closed with GOAWAY (scope connection) or a stream reset (scope stream), by error code; refused_stream is a client past limits.maxConcurrentStreams' });
    const evaluations = meter.createObservableCounter('mandate.evaluations', { description: 'Cedar evaluations by where they ran: compiled policies, cedar-wasm on the main thread, cedar-wasm in the pool' });
    meter.addBatchObservableCallback(
      (r) => {
        const j = gauges.jwtCache?.();
        if (j) {
          r.observe(jwt, j.hits, { result: 'hit' });
          r.observe(jwt, j.misses, { result: 'miss' });
          r.observe(jwt, j.coalesced, { result: 'coalesced' });
        }
        if (gauges.xfccIgnored) r.observe(xfcc, gauges.xfccIgnored());
        if (gauges.certificateCacheHits) r.observe(certs, gauges.certificateCacheHits());
        const l = gauges.decisionLog?.();
        if (l) for (const [result, n] of Object.entries(l)) r.observe(log, n, { result });
        const up = gauges.taskStoreHealthy?.();
        if (up !== null && up !== undefined) r.observe(store, up ? 1 : 0);
        if (gauges.dryRun) r.observe(dryRun, gauges.dryRun() ? 1 : 0);
        const e = gauges.evaluations?.();
        if (e) {
          r.observe(evaluations, e.compiled, { path: 'compiled' });
          r.observe(evaluations, e.wasmInline, { path: 'wasm-inline' });
          r.observe(evaluations, e.wasmPool, { path: 'wasm-pool' });
        }
        const t = gauges.tls?.();
        if (t) {
          r.observe(tlsNotAfter, t.notAfterSeconds);
          r.observe(tlsRefused, t.failedHandshakes, { stage: 'handshake' });
          r.observe(tlsRefused, t.refusedClients, { stage: 'peer' });
        }
        for (const e of gauges.http2Errors?.() ?? []) r.observe(http2Errors, e.count, { scope: e.scope, code: e.code });
        const s = gauges.shadow?.();
        if (s) {
          r.observe(shadowCounter, s.evaluated, { result: 'evaluated' });
          r.observe(shadowCounter, s.disagreements, { result: 'disagreement' });
        }
      },
      [jwt, xfcc, certs, log, store, shadowCounter, evaluations, dryRun, tlsNotAfter, tlsRefused, http2Errors],
    );

    const processors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
    if (options.spanExporter != null) processors.push(new BatchSpanProcessor(options.spanExporter, { maxQueueSize: 2048, exportTimeoutMillis: 5000 }));
    this.tracerProvider = processors.length === 0 ? null : new BasicTracerProvider({ resource, spanProcessors: processors });
    this.tracer = this.tracerProvider?.getTracer('mandate') ?? null;
  }

  get tracing(): boolean {
    return this.tracer !== null;
  }

  /** A span for one Check, child of the trace in its headers; null when tracing is off. */
  startCheck(headers: ReadonlyMap<string, string>): Span | null {
    if (this.tracer === null) return null;
    const parent: Context = headers.size === 0 ? ROOT_CONTEXT : this.propagator.extract(ROOT_CONTEXT, headers, headerGetter);
    return this.tracer.startSpan(`${AUTHORIZATION}/Check`, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': AUTHORIZATION, 'rpc.method': 'Check' } }, parent);
  }

  /** A span for a task API call, a child of the trace in its metadata if any. */
  startTaskCall(method: string, headers: ReadonlyMap<string, string>): Span | null {
    if (this.tracer === null) return null;
    const parent = this.propagator.extract(ROOT_CONTEXT, headers, headerGetter);
    return this.tracer.startSpan(`${TASKS}/${method}`, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': TASKS, 'rpc.method': method } }, parent);
  }

  recordDecision(decision: Decision, latencyUs: number, span: Span | null): void {
    const decided = decision.allowed ? 'allow' : 'deny';
    const key = decision.code === null ? decided : `${decided} ${decision.code}`;
    const counted = this.decisions.get(key);
    if (counted !== undefined) counted.count++;
    else this.decisions.set(key, { attributes: decision.code === null ? { decision: decided } : { decision: decided, code: decision.code }, count: 1 });
    this.checkDuration.record(latencyUs / 1e6, decision.allowed ? ALLOW : DENY);
    if (decision.evaluationUs > 0) this.evaluationDuration.record(decision.evaluationUs / 1e6, NO_ATTRIBUTES);
    if (span === null) return;
    if (span.isRecording()) {
      // What a decision does not have is not set (no empty strings standing for "none").
      span.setAttributes({ 'mandate.decision': decided, 'mandate.policy.version': decision.policyVersion, 'mandate.policy.determining': [...decision.determining] });
      if (decision.code !== null) span.setAttribute('mandate.code', decision.code);
      if (decision.action !== null) span.setAttribute('mandate.action', decision.action);
      if (decision.identity !== null && decision.identity.kind !== 'anonymous') span.setAttribute('mandate.principal.trust_domain', decision.identity.spiffe.trustDomain);
      if (decision.taskId !== null) span.setAttribute('mandate.task.id', decision.taskId);
      if (decision.evaluationPath !== null) span.setAttribute('mandate.evaluation.mode', decision.evaluationPath);
      if (decision.code === 'internal_error') span.setStatus({ code: SpanStatusCode.ERROR, message: 'internal_error' });
    }
    span.end();
  }

  recordTaskCall(method: string, code: string, span: Span | null): void {
    this.taskApi.add(1, { method, code });
    if (span !== null) {
      if (span.isRecording()) span.setAttribute('mandate.code', code);
      span.end();
    }
  }

  recordReload(result: 'ok' | 'rejected' | 'unchanged'): void {
    this.reloads.add(1, { result });
  }

  recordStoreError(): void {
    this.storeErrors.add(1);
  }

  /** Serves Prometheus text (admin port, GET /metrics). */
  handleMetrics(req: IncomingMessage, res: ServerResponse): void {
    this.prometheus.getMetricsRequestHandler(req, res);
  }

  async shutdown(): Promise<void> {
    this.stopRuntimeMetrics();
    await Promise.allSettled([this.meterProvider.shutdown(), this.tracerProvider?.shutdown()]);
  }
}

