/**
 * prom-client's process and Node.js metrics as the daemon registers them (metrics/node-metrics.ts):
 * every default collector of prom-client but the GC histogram, whose `gc` PerformanceObserver
 * doubled the verdict latency's p99.9. A prom-client that adds a collector fails the first test,
 * so that a new one is chosen, not taken by default.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectDefaultMetrics } from 'prom-client';
import { SeawallMetrics } from '../../metrics/index.js';
import { LEFT_OUT_COLLECTORS, NODE_COLLECTORS } from '../../metrics/node-metrics.js';

test("every one of prom-client's default collectors is registered or left out by name", () => {
  assert.deepEqual(
    [...NODE_COLLECTORS, ...LEFT_OUT_COLLECTORS].sort(),
    [...collectDefaultMetrics.metricsList].sort(),
  );
});

test('the process and Node.js metrics are exported, prefixed, without the GC histogram', async () => {
  const text = await new SeawallMetrics().metricsText();
  const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  for (const name of [
    'seawall_process_cpu_seconds_total',
    'seawall_process_start_time_seconds',
    'seawall_process_resident_memory_bytes',
    'seawall_process_open_fds',
    'seawall_nodejs_eventloop_lag_p99_seconds',
    'seawall_nodejs_heap_size_used_bytes',
    'seawall_nodejs_heap_space_size_used_bytes',
    'seawall_nodejs_active_handles',
    'seawall_nodejs_version_info',
  ])
    assert.ok(families.has(name), `${name} is exported`);
  assert.ok(!families.has('seawall_nodejs_gc_duration_seconds'), 'no GC histogram');
  assert.ok(![...families].some((f) => f?.includes('gc')), [...families].join(' '));
});
