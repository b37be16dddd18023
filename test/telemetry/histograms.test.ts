// The per-Check histograms kept outside the OpenTelemetry SDK (src/telemetry/histograms.ts)
// must read, on /metrics, exactly as the SDK's own explicit-bucket histogram would: the same
// buckets (upper bounds inclusive), sums, counts and labels, for the same recorded values.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationType, MeterProvider } from '@opentelemetry/sdk-metrics';
import { KeyedHistogram, KeyedHistogramProducer } from '../../src/telemetry/histograms.js';
import { seeded } from '../helpers/generate.js';

const BOUNDARIES = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const NAME = 'mandate.check.duration_seconds';

/** The metric's lines of a Prometheus text, without the scope labels and timestamps that differ by construction. */
function lines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('mandate_check_duration_seconds'))
    .map((l) => l.replace(/otel_scope_[a-z_]+="[^"]*",?/g, '').replace(/,}/, '}').replace('{}', ''))
    .sort();
}

async function text(exporter: PrometheusExporter): Promise<string> {
  const { resourceMetrics } = await exporter.collect();
  return new PrometheusSerializer().serialize(resourceMetrics);
}

describe('keyed histograms', () => {
  it('read on /metrics as the SDK histogram does, value for value', async () => {
    const resource = resourceFromAttributes({ 'service.name': 'mandate' });
    const sdkExporter = new PrometheusExporter({ preventServerStart: true });
    const provider = new MeterProvider({
      resource,
      readers: [sdkExporter],
      views: [{ instrumentName: 'mandate.check.duration', name: NAME, aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: BOUNDARIES } } }],
    });
    const sdk = provider.getMeter('mandate').createHistogram('mandate.check.duration', { unit: 's', description: 'd' });
    const ours = new KeyedHistogram(NAME, 'd', 's', BOUNDARIES);
    const oursExporter = new PrometheusExporter({ preventServerStart: true, metricProducers: [new KeyedHistogramProducer([ours], resource, { name: 'mandate' })] });
    // A reader collects only once a MeterProvider holds it (one without instruments here).
    const oursProvider = new MeterProvider({ resource, readers: [oursExporter] });
    const seed = Number(process.env['MANDATE_FUZZ_SEED'] ?? Date.now() % 1_000_000);
    const random = seeded(seed);
    // Values on every boundary (upper bounds are inclusive), between them, beyond the last, and NaN.
    const values = [...BOUNDARIES, 0, 3, Number.NaN, ...Array.from({ length: 2000 }, () => random() ** 4 * 3)];
    const allow = { decision: 'allow' };
    const deny = { decision: 'deny' };
    for (const v of values) {
      const attributes = random() < 0.7 ? allow : deny;
      sdk.record(v, attributes);
      ours.record(v, attributes);
    }
    const expected = lines(await text(sdkExporter));
    assert.ok(expected.length > 30, `the SDK histogram printed ${expected.length} lines`);
    assert.deepEqual(lines(await text(oursExporter)), expected, `seed ${seed}`);
    await provider.shutdown();
    await oursProvider.shutdown();
  });

  it('print nothing before the first value, and a series without attributes when given none', async () => {
    const h = new KeyedHistogram(NAME, 'd', 's', [1, 2]);
    const exporter = new PrometheusExporter({ preventServerStart: true, metricProducers: [new KeyedHistogramProducer([h], resourceFromAttributes({}), { name: 'mandate' })] });
    const provider = new MeterProvider({ readers: [exporter] });
    assert.deepEqual(lines(await text(exporter)).filter((l) => !l.startsWith('#')), []);
    h.record(1.5, {});
    assert.deepEqual(lines(await text(exporter)), [
      'mandate_check_duration_seconds_bucket{le="+Inf"} 1',
      'mandate_check_duration_seconds_bucket{le="1"} 0',
      'mandate_check_duration_seconds_bucket{le="2"} 1',
      'mandate_check_duration_seconds_count 1',
      'mandate_check_duration_seconds_sum 1.5',
    ]);
    await provider.shutdown();
  });
});
