// Node runtime and process metrics, named after the OpenTelemetry semantic conventions
// (process.*, v8js.*, nodejs.eventloop.*): what an operator looks at first when decisions get
// slow (a busy event loop, garbage collection, memory). Everything is read when /metrics is
// scraped, except garbage collections (a PerformanceObserver entry per collection) and the
// event loop delay (Node's native histogram, sampled every 20 ms).

import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { monitorEventLoopDelay, PerformanceObserver, performance, type EventLoopUtilization, type PerformanceEntry } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';

/** Instruments with a unit, for the Prometheus names (telemetry.ts adds the unit suffix). */
export const RUNTIME_UNITS: Readonly<Record<string, string>> = Object.freeze({
  'process.cpu.time': 's',
  'process.memory.usage': 'By',
  'process.uptime': 's',
  'v8js.memory.heap.used': 'By',
  'v8js.memory.heap.limit': 'By',
  'v8js.gc.duration': 's',
  'nodejs.eventloop.delay.p50': 's',
  'nodejs.eventloop.delay.p99': 's',
  'nodejs.eventloop.delay.max': 's',
  'nodejs.eventloop.utilization': '1',
});

// node:perf_hooks gc entry kinds (perf_hooks.constants.NODE_PERFORMANCE_GC_*).
const GC_TYPES: Readonly<Record<number, string>> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };

/** Registers the runtime instruments on meter; the returned function stops what runs between scrapes. */
export function registerRuntimeMetrics(meter: Meter): () => void {
  const cpu = meter.createObservableCounter('process.cpu.time', { unit: 's', description: 'CPU time of the process, by mode (user, system)' });
  const memory = meter.createObservableGauge('process.memory.usage', { unit: 'By', description: 'Resident set size of the process' });
  const uptime = meter.createObservableGauge('process.uptime', { unit: 's', description: 'Time since the process started' });
  const heapUsed = meter.createObservableGauge('v8js.memory.heap.used', { unit: 'By', description: 'V8 heap in use, by heap space' });
  const heapLimit = meter.createObservableGauge('v8js.memory.heap.limit', { unit: 'By', description: 'The most V8 heap the process may use' });
  const delayP50 = meter.createObservableGauge('nodejs.eventloop.delay.p50', { unit: 's', description: 'Event loop delay, median since the last scrape' });
  const delayP99 = meter.createObservableGauge('nodejs.eventloop.delay.p99', { unit: 's', description: 'Event loop delay, 99th percentile since the last scrape' });
  const delayMax = meter.createObservableGauge('nodejs.eventloop.delay.max', { unit: 's', description: 'Event loop delay, the longest since the last scrape' });
  const utilization = meter.createObservableGauge('nodejs.eventloop.utilization', { unit: '1', description: 'Share of time the event loop was busy since the last scrape' });
  const gcDuration = meter.createHistogram('v8js.gc.duration', { unit: 's', description: 'Garbage collection pauses, by type' });

  const delay = monitorEventLoopDelay({ resolution: 20 });
  delay.enable();
  let lastUtilization: EventLoopUtilization = performance.eventLoopUtilization();
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcDuration.record(entry.duration / 1000, { 'v8js.gc.type': GC_TYPES[kind] ?? 'other' });
    }
  });
  gc.observe({ entryTypes: ['gc'] });

  meter.addBatchObservableCallback(
    (r) => {
      const usage = process.cpuUsage();
      r.observe(cpu, usage.user / 1e6, { 'cpu.mode': 'user' });
      r.observe(cpu, usage.system / 1e6, { 'cpu.mode': 'system' });
      r.observe(memory, process.memoryUsage.rss());
      r.observe(uptime, process.uptime());
      for (const space of getHeapSpaceStatistics()) r.observe(heapUsed, space.space_used_size, { 'v8js.heap.space.name': space.space_name });
      r.observe(heapLimit, getHeapStatistics().heap_size_limit);
      // Percentiles of the interval since the last scrape; nothing measured yet reads as 0.
      if (delay.count > 0) {
        r.observe(delayP50, delay.percentile(50) / 1e9);
        r.observe(delayP99, delay.percentile(99) / 1e9);
        r.observe(delayMax, delay.max / 1e9);
      }
      delay.reset();
      const now = performance.eventLoopUtilization();
      r.observe(utilization, performance.eventLoopUtilization(now, lastUtilization).utilization);
      lastUtilization = now;
    },
    [cpu, memory, uptime, heapUsed, heapLimit, delayP50, delayP99, delayMax, utilization],
  );
  return () => {
    delay.disable();
    gc.disconnect();
  };
}
