// Traces and metrics: a Check's span is a child of the trace its request carries, and
// /metrics on the admin port shows the decisions counted and their latency.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { kPackageRoot } from '../../src/package-root.js';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { after, before, describe, it } from 'node:test';
import { Telemetry } from '../../src/telemetry/telemetry.js';
import { SUPPORT_AGENT, checkRequest } from '../helpers/requests.js';
import { spawnServer, startExampleServer, type RunningServer } from '../helpers/server.js';
import { createCheckClient, type CheckClient } from '../helpers/upstream.js';

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  let running: RunningServer;
  let client: CheckClient;
  before(async () => {
    running = await startExampleServer(undefined, new Telemetry({}, { spanProcessors: [new SimpleSpanProcessor(exporter)], env: {} }));
    client = createCheckClient(running.address);
  });
  after(async () => {
    client.close();
    await running.close();
  });

  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parentId = '00f067aa0ba902b7';

  it('makes each Check a child span of the traceparent the request carries', async () => {
    exporter.reset();
    await client.check(checkRequest('GET', '/tickets/internal-0', { principal: SUPPORT_AGENT, headers: { traceparent: `00-${traceId}-${parentId}-01` } }));
    const [span] = exporter.getFinishedSpans();
    assert.ok(span);
    assert.equal(span.name, 'envoy.service.auth.v3.Authorization/Check');
    assert.deepEqual([span.attributes['rpc.system'], span.attributes['rpc.service'], span.attributes['rpc.method']], ['grpc', 'envoy.service.auth.v3.Authorization', 'Check']);
    assert.equal(span.resource.attributes['service.version'], (JSON.parse(readFileSync(join(kPackageRoot, 'package.json'), 'utf8')) as { version: string }).version);
    assert.equal(span.spanContext().traceId, traceId);
    assert.equal(span.parentSpanContext?.spanId, parentId);
    assert.equal(span.attributes['mandate.decision'], 'deny');
    assert.equal(span.attributes['mandate.code'], 'policy_denied');
    assert.equal(span.attributes['mandate.action'], 'GET /tickets/{id}');
    assert.equal(span.attributes['mandate.principal.trust_domain'], 'example.org');
    assert.deepEqual(span.attributes['mandate.policy.determining'], ['no-agent-internal-tickets']);
    assert.match(String(span.attributes['mandate.policy.version']), /^sha256:/);
    // Where it was evaluated, truthfully: the example's policies are compiled.
    assert.equal(span.attributes['mandate.evaluation.mode'], 'compiled');
  });

  it('follows B3 headers too', async () => {
    exporter.reset();
    await client.check(checkRequest('GET', '/status', { headers: { 'x-b3-traceid': traceId, 'x-b3-spanid': parentId, 'x-b3-sampled': '1' } }));
    const [span] = exporter.getFinishedSpans();
    assert.equal(span?.spanContext().traceId, traceId);
    assert.equal(span?.parentSpanContext?.spanId, parentId);
    // An anonymous allow: no code, no trust domain, no task; absent, not "".
    assert.equal(span?.attributes['mandate.decision'], 'allow');
    for (const key of ['mandate.code', 'mandate.principal.trust_domain', 'mandate.task.id']) assert.equal(key in (span?.attributes ?? {}), false, key);
  });

  it('starts a new trace when the traceparent cannot be parsed', async () => {
    exporter.reset();
    await client.check(checkRequest('GET', '/status', { headers: { traceparent: 'garbage-not-a-traceparent' } }));
    const [span] = exporter.getFinishedSpans();
    assert.ok(span);
    assert.match(span.spanContext().traceId, /^[0-9a-f]{32}$/);
    assert.equal(span.parentSpanContext, undefined);
  });
});

describe('metrics on the admin port', () => {
  it('counts decisions by decision and code and fills the latency histogram', async () => {
    const server = await spawnServer([]);
    const admin = /"admin":"([^"]+)"/.exec(server.stderr())?.[1] ?? '';
    const client = createCheckClient(server.address);
    try {
      for (let i = 0; i < 3; i++) await client.check(checkRequest('GET', '/tickets/T-1', { principal: SUPPORT_AGENT }));
      await client.check(checkRequest('GET', '/prod-db/x', { principal: SUPPORT_AGENT }));
      await client.check({});
      // A client that does not speak HTTP/2: closed with GOAWAY PROTOCOL_ERROR, and counted.
      const [host, port] = server.address.split(':') as [string, string];
      const junk = connect(Number(port), host, () => junk.end('GET / HTTP/1.1\r\nHost: mandate\r\n\r\n'));
      junk.resume();
      await new Promise((r) => junk.once('close', r));
      const text = await (await fetch(`http://${admin}/metrics`)).text();
      const value = (name: string, labels: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
        return line === undefined ? NaN : Number(line.split(' ').pop());
      };
      // An allow has no code: the label is absent, not "none" or "".
      const allowLine = text.split('\n').find((l) => l.startsWith('mandate_decisions_total{') && l.includes('decision="allow"'));
      assert.ok(allowLine !== undefined && !allowLine.includes('code='), allowLine);
      assert.equal(value('mandate_decisions_total', 'decision="allow"'), 3);
      assert.equal(value('mandate_decisions_total', 'decision="deny",code="no_route"'), 1);
      assert.equal(value('mandate_decisions_total', 'decision="deny",code="bad_request"'), 1);
      assert.match(text, /mandate_check_duration_seconds_bucket\{[^}]*le="0.00005"[^}]*\} \d+/);
      assert.equal(value('mandate_check_duration_seconds_count', 'decision="allow"'), 3);
      assert.equal(value('mandate_evaluation_duration_seconds_count', 'otel_scope_name="mandate"'), 3, 'three requests reached Cedar');
      assert.match(text, /mandate_decision_log_lines_total\{[^}]*result="dropped"[^}]*\} 0/);
      // Instruments are named without units; Prometheus names carry the unit as a suffix.
      assert.match(text, /# UNIT mandate_check_duration_seconds s/);
      assert.doesNotMatch(text, /duration_seconds_seconds/);
      // The Node runtime and the process, after the OpenTelemetry semantic conventions.
      assert.ok(value('process_cpu_time_seconds_total', 'cpu_mode="user"') > 0);
      assert.ok(value('process_memory_usage_bytes', 'otel_scope_name="mandate"') > 10_000_000);
      assert.ok(value('v8js_memory_heap_used_bytes', 'v8js_heap_space_name="old_space"') > 0);
      assert.ok(value('v8js_memory_heap_limit_bytes', 'otel_scope_name="mandate"') > 0);
      assert.ok(value('process_uptime_seconds', 'otel_scope_name="mandate"') > 0);
      const busy = value('nodejs_eventloop_utilization_ratio', 'otel_scope_name="mandate"');
      assert.ok(busy > 0 && busy <= 1, String(busy));
      const status = (await (await fetch(`http://${admin}/v1/status`)).json()) as Record<string, unknown>;
      assert.match(String(status['policyVersion']), /^sha256:/);
      // The default: auto, a worker pool for what cedar-wasm evaluates. The example's policies
      // all compile and these requests are proven: the three that reached Cedar were decided
      // compiled on the main thread, and no worker thread was started.
      assert.equal(status['evaluation'], 'auto');
      assert.ok(Number(status['workers']) >= 1);
      const pool = status['pool'] as { batches: number; pooled: number; inline: number; overloaded: number; workerFailures: number; workersStarted: boolean };
      assert.equal(pool.inline + pool.pooled, 0, JSON.stringify(pool));
      assert.equal(pool.workersStarted, false);
      assert.deepEqual(status['evaluations'], { compiled: 3, wasmInline: 0, wasmPool: 0 });
      assert.deepEqual(status['compiledPolicies'], { compiled: 18, total: 18 });
      assert.equal(value('mandate_evaluations_total', 'path="compiled"'), 3);
      assert.equal(value('mandate_evaluations_total', 'path="wasm-pool"'), 0);
      assert.equal(value('mandate_http2_errors_total', 'scope="connection",code="protocol_error"'), 1);
      assert.doesNotMatch(text, /mandate_http2_errors_total\{[^}]*scope="stream"/, 'no stream was reset');
    } finally {
      client.close();
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});

describe('the JWT-SVID cache on /metrics', () => {
  it('counts hits, misses and first uses that waited for a verification in flight', async () => {
    const telemetry = new Telemetry({ jwtCache: () => ({ hits: 7, misses: 2, coalesced: 5 }) }, { env: {} });
    const server = createServer((req, res) => telemetry.handleMetrics(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      for (const [result, n] of [['hit', 7], ['miss', 2], ['coalesced', 5]] as const) {
        assert.match(text, new RegExp(`^mandate_identity_jwt_cache_total\\{[^}]*result="${result}"[^}]*\\} ${n}$`, 'm'), result);
      }
    } finally {
      server.close();
      await telemetry.shutdown();
    }
  });
});
