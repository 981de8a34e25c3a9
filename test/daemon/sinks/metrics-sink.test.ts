/**
 * The metrics sink as the bus drives it: per-VM series live only while a session of the VM is
 * open, however late its last records are counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricsSink } from '../../../daemon/sinks/metrics-sink.js';
import { SeawallMetrics } from '../../../metrics/index.js';
import { find, value } from '../../metrics/exposition.js';
import { record, session } from '../../store/records.js';

const TTL_MS = 60_000;

function clockedSink() {
  const clock = { ms: 0 };
  const m = new SeawallMetrics({
    defaultMetrics: false,
    vmSeriesTtlSeconds: TTL_MS / 1000,
    now: () => clock.ms,
  });
  return { m, clock, sink: metricsSink(m) };
}

async function seriesOf(m: SeawallMetrics, vm: string): Promise<number> {
  const text = await m.metricsText();
  return ['seawall_memory_errors_total', 'seawall_fallback_events_reported_total', 'seawall_poisoned_pages']
    .flatMap((family) => find(text, family))
    .filter((s) => s.labels.vm === vm).length;
}

test('replays counted after their session closed do not keep the VM live: its series expire', async () => {
  const { m, clock, sink } = clockedSink();
  const s = session('vm-crashing', 1n);
  sink.sessionOpened?.(s);
  sink.afterReply?.([record({ session: s, seq: 1, timeMs: 1_700_000_000_000 })]);
  // The plugin went away with replays still queued: the bus closes the session, then counts them.
  sink.sessionClosed?.(s, 'disconnect', null);
  const replays = [2, 3].map((seq) =>
    record({ session: s, seq, timeMs: 1_700_000_000_000 + seq, replay: true }),
  );
  sink.afterReply?.(replays);
  assert.ok((await seriesOf(m, 'vm-crashing')) > 0);
  clock.ms += TTL_MS;
  assert.equal(m.sweep(), 1, 'departed, whatever came after the close');
  assert.equal(await seriesOf(m, 'vm-crashing'), 0);
  assert.equal(m.trackedVms, 0);
});

test('a session that ends after the same VM’s next one opened leaves its series and gauge live', async () => {
  const { m, clock, sink } = clockedSink();
  const old = session('vm-x', 1n);
  sink.sessionOpened?.(old);
  sink.afterReply?.([record({ session: old, seq: 1, timeMs: 1_700_000_000_000, gpa: 0x1000n })]);
  // The VMM reconnects at once: its new session is admitted while the old one is still closing.
  const next = session('vm-x', 2n);
  sink.sessionOpened?.(next);
  sink.sessionClosed?.(old, 'disconnect', null);
  clock.ms += 10 * TTL_MS;
  assert.equal(m.sweep(), 0, 'vm-x has a session open');
  assert.equal(value(await m.metricsText(), 'seawall_poisoned_pages', { vm: 'vm-x' }), 1);
  sink.sessionClosed?.(next, 'normal', null);
  clock.ms += TTL_MS;
  assert.equal(m.sweep(), 1);
  assert.equal(await seriesOf(m, 'vm-x'), 0);
});

test('a refused connection is counted as ended rejected, and as a protocol error for a version or a peer not admitted', async () => {
  const { m, sink } = clockedSink();
  sink.sessionOpened?.(session('vm-a', 1n));
  for (const reason of ['vm_in_use', 'too_many_sessions', 'shutting_down']) {
    sink.sessionRejected?.(reason, 'refused', null);
  }
  let text = await m.metricsText();
  assert.equal(value(text, 'seawall_plugin_sessions_ended_total', { outcome: 'rejected' }), 3);
  assert.deepEqual(find(text, 'seawall_protocol_errors_total'), [], 'none of these violates the protocol');
  assert.equal(value(text, 'seawall_plugin_sessions'), 1, 'refusals never opened a session');
  sink.sessionRejected?.('version', 'protocol 1.9 is not spoken here', null);
  sink.sessionRejected?.('unauthorized', 'uid 4242 is not allowed', null);
  text = await m.metricsText();
  assert.equal(value(text, 'seawall_plugin_sessions_ended_total', { outcome: 'rejected' }), 5);
  assert.equal(value(text, 'seawall_protocol_errors_total', { reason: 'version' }), 1);
  assert.equal(value(text, 'seawall_protocol_errors_total', { reason: 'unauthorized' }), 1);
  assert.equal(value(text, 'seawall_plugin_sessions'), 1);
});

test('a verdict whose rule name the metrics layer refuses still has its latency and memory error counted', async () => {
  const failures: unknown[] = [];
  const m = new SeawallMetrics({ defaultMetrics: false });
  const sink = metricsSink(m, (err) => failures.push(err));
  const s = session('vm-a', 1n);
  sink.sessionOpened?.(s);
  sink.afterReply?.([record({ session: s, seq: 1, timeMs: 1_700_000_000_000, rule: 'r'.repeat(129) })]);
  assert.equal(failures.length, 1, 'the action counter refused the rule name');
  const text = await m.metricsText();
  assert.equal(value(text, 'seawall_verdict_latency_seconds_count'), 1);
  assert.equal(value(text, 'seawall_memory_errors_total', { vm: 'vm-a', kind: 'sea', severity: 'uer' }), 1);
});

test('an APPLIED FALLBACK counts the fallback once, for an answered event of a 1.1 session, a late KILL too', async () => {
  const { m, sink } = clockedSink();
  const s = { ...session('vm-late', 1n), minor: 1 };
  const fallback = { action: 1, source: 'fallback' as const };
  sink.sessionOpened?.(s);
  sink.afterReply?.([
    record({ session: s, seq: 1, timeMs: 1_700_000_000_000, action: 'kill' }),
    record({ session: s, seq: 2, timeMs: 1_700_000_000_001 }),
    record({ session: s, seq: 3, timeMs: 1_700_000_000_002, replay: true }),
  ]);
  const applied = async () =>
    value(await m.metricsText(), 'seawall_fallback_events_reported_total', { vm: 'vm-late', via: 'applied' });
  sink.applied?.(s, 1, 0, fallback);
  assert.equal(await applied(), 1, 'the late KILL');
  sink.applied?.(s, 1, 0, fallback);
  assert.equal(await applied(), 1, 'a repeated APPLIED');
  sink.applied?.(s, 3, 0, fallback);
  sink.applied?.(s, 9, 0, fallback);
  assert.equal(await applied(), 1, 'a replay, a seq never answered');
  sink.applied?.(s, 2, 0, { action: 1, source: 'verdict' });
  sink.applied?.(s, 2, 0, fallback);
  assert.equal(await applied(), 1, 'a FALLBACK after the event’s APPLIED');
  sink.afterReply?.([record({ session: s, seq: 4, timeMs: 1_700_000_000_003 })]);
  sink.sessionClosed?.(s, 'disconnect', null);
  sink.afterReply?.([record({ session: s, seq: 5, timeMs: 1_700_000_000_004 })]);
  sink.applied?.(s, 4, 0, fallback);
  sink.applied?.(s, 5, 0, fallback);
  assert.equal(await applied(), 1, 'nothing of a closed session');

  const old = session('vm-old', 2n);
  sink.sessionOpened?.(old);
  sink.afterReply?.([record({ session: old, seq: 1, timeMs: 1_700_000_000_000 })]);
  sink.applied?.(old, 1, 0, fallback);
  assert.deepEqual(
    find(await m.metricsText(), 'seawall_fallback_events_reported_total').filter(
      (f) => f.labels.vm === 'vm-old',
    ),
    [],
    'a 1.0 session never reports a fallback by APPLIED',
  );
});
