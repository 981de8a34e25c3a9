/**
 * prom-client's process and Node.js metrics, every one of its default collectors but the garbage
 * collection histogram (`nodejs_gc_duration_seconds`). That one observes each collection through
 * a `gc` PerformanceObserver, and Node's delivery of those entries to the event loop doubled the
 * daemon's verdict latency at p99.9 on one CPU: 222–361 against 139–156 µs without store, and
 * 270–371 against 240–266 µs as shipped (docs/performance.md, 2026-12-03). The heap, event-loop
 * lag and CPU metrics say what a GC pause would. `collectDefaultMetrics` takes no list, so the
 * collectors are imported one by one; test/metrics/node-metrics.test.ts fails when prom-client
 * adds one, so that it is chosen, not taken by default.
 */
import type { Registry } from 'prom-client';
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';

/** By the names `collectDefaultMetrics.metricsList` gives them. */
const COLLECTORS = {
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  eventLoopLag,
  processResources,
  processHandles,
  processRequests,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
  version,
};

/** The default collectors registered, and the ones left out (above). */
export const NODE_COLLECTORS: readonly string[] = Object.keys(COLLECTORS);
export const LEFT_OUT_COLLECTORS: readonly string[] = ['gc'];

/**
 * Gauges named *_total, which break the naming rules (`promtool check metrics` flags them): the
 * same counts stay available, split by type, in `nodejs_active_{handles,requests,resources}`.
 */
const LINT_FAILING = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Registers them on `registry`, named `<prefix><name>`, as `collectDefaultMetrics` would. */
export function collectNodeMetrics(registry: Registry, prefix: string): void {
  // prom-client's own default precision, in ms.
  const config = { prefix, eventLoopMonitoringPrecision: 10 };
  for (const collect of Object.values(COLLECTORS)) collect(registry, config);
  for (const name of LINT_FAILING) registry.removeSingleMetric(prefix + name);
}
