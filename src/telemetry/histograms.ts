// Histograms recorded per Check without OpenTelemetry's per-call attribute hashing: the SDK's
// synchronous histogram sorts and serializes its attributes on every record (~1 us per Check,
// measured with the decision label). Here a series is picked by identity, the attributes
// object the caller gives (one constant per series, a bounded set: the decision), and its
// buckets are plain counters; at collection a MetricProducer hands them to the exporter as the
// cumulative explicit-bucket histogram the SDK would have built
// (test/telemetry/histograms.test.ts compares the Prometheus text of both).

import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type CollectionResult, type HistogramMetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';

interface Series {
  readonly attributes: Attributes;
  readonly startTime: HrTime;
  /** counts[i]: values <= boundaries[i] and above the previous boundary; the last, above them all. */
  readonly counts: number[];
  sum: number;
  count: number;
  min: number;
  max: number;
}

function hrNow(): HrTime {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
}

export class KeyedHistogram {
  /** By the attributes object itself: callers pass one constant object per series. */
  private readonly series = new Map<Attributes, Series>();

  constructor(
    /** The metric's name as exported (what a view would have renamed it to). */
    readonly name: string,
    readonly description: string,
    readonly unit: string,
    readonly boundaries: readonly number[],
  ) {}

  /** Records `value` in the series of `attributes`: the same (constant) object for the same series. */
  record(value: number, attributes: Attributes): void {
    if (Number.isNaN(value)) return; // as the SDK: counted nowhere
    let s = this.series.get(attributes);
    if (s === undefined) {
      s = { attributes, startTime: hrNow(), counts: new Array<number>(this.boundaries.length + 1).fill(0), sum: 0, count: 0, min: Infinity, max: -Infinity };
      this.series.set(attributes, s);
    }
    const b = this.boundaries;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    (s.counts[i] as number)++;
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
  }

  data(endTime: HrTime): HistogramMetricData {
    return {
      descriptor: { name: this.name, description: this.description, unit: this.unit, valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.series.values()].map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: { buckets: { boundaries: [...this.boundaries], counts: [...s.counts] }, sum: s.sum, count: s.count, min: s.min, max: s.max },
      })),
    };
  }
}

/** The histograms above, for a MetricReader (the Prometheus exporter's `metricProducers`). */
export class KeyedHistogramProducer implements MetricProducer {
  constructor(
    private readonly histograms: readonly KeyedHistogram[],
    private readonly resource: Resource,
    private readonly scope: { readonly name: string; readonly version?: string },
  ) {}

  async collect(): Promise<CollectionResult> {
    const now = hrNow();
    return { resourceMetrics: { resource: this.resource, scopeMetrics: [{ scope: { ...this.scope }, metrics: this.histograms.map((h) => h.data(now)) }] }, errors: [] };
  }
}
