import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMetricsError, MEMORY_ERROR_KINDS, SEVERITIES, SeawallMetrics } from '../../metrics/index.js';
import { find, value } from './exposition.js';

function metrics(options: ConstructorParameters<typeof SeawallMetrics>[0] = {}) {
  return new SeawallMetrics({ defaultMetrics: false, ...options });
}

function assertMetricsError(code: string) {
  return (err: unknown) => {
    assert.ok(isMetricsError(err), `expected a MetricsError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

describe('SeawallMetrics counts', () => {
  it('counts memory errors by VM, kind and severity exactly as recorded', async () => {
    const m = metrics();
    const recorded = new Map<string, number>();
    let i = 0;
    for (const vm of ['vm-a', 'vm-b', 'vm-c']) {
      for (const kind of MEMORY_ERROR_KINDS) {
        for (const severity of SEVERITIES) {
          const n = (i++ % 4) + 1;
          for (let k = 0; k < n; k++) m.memoryError(vm, kind, severity);
          recorded.set(`${vm}/${kind}/${severity}`, n);
        }
      }
    }
    const text = await m.metricsText();
    const got = find(text, 'seawall_memory_errors_total');
    assert.equal(got.length, recorded.size);
    for (const s of got) {
      assert.equal(
        s.value,
        recorded.get(`${s.labels.vm}/${s.labels.kind}/${s.labels.severity}`),
        JSON.stringify(s),
      );
    }
  });

  it('counts actions, downgrades, protocol, store, migration and kill outcomes', async () => {
    const m = metrics();
    m.action('inject', 'default');
    m.action('inject', 'default');
    m.action('kill', 'uc-kills');
    m.downgrade('iabt_esr', 'dabt', 'r1');
    m.protocolError('frame_too_large');
    m.storeError('append');
    m.sinkFailure('journal');
    m.sinkFailure('journal');
    m.migration('refused');
    m.kill('sigkilled');
    m.fallbackReported('vm-a', 5, 'replay');
    m.fallbackReported('vm-a', 2, 'replay');
    m.fallbackReported('vm-a', 1, 'applied');
    m.setPoisonedPages('vm-a', 3);
    m.setPoisonedPages('vm-a', 2);
    m.observeVerdictLatency(3e-5);
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_actions_total', { action: 'inject', rule: 'default' }), 2);
    assert.equal(value(text, 'seawall_actions_total', { action: 'kill', rule: 'uc-kills' }), 1);
    assert.equal(
      value(text, 'seawall_injection_downgrades_total', { from: 'iabt_esr', to: 'dabt', rule: 'r1' }),
      1,
    );
    assert.equal(value(text, 'seawall_protocol_errors_total', { reason: 'frame_too_large' }), 1);
    assert.equal(value(text, 'seawall_store_errors_total', { op: 'append' }), 1);
    assert.equal(value(text, 'seawall_sink_failures_total', { sink: 'journal' }), 2);
    assert.equal(value(text, 'seawall_migrations_total', { outcome: 'refused' }), 1);
    assert.equal(value(text, 'seawall_kills_total', { outcome: 'sigkilled' }), 1);
    assert.equal(value(text, 'seawall_fallback_events_reported_total', { vm: 'vm-a', via: 'replay' }), 7);
    assert.equal(value(text, 'seawall_fallback_events_reported_total', { vm: 'vm-a', via: 'applied' }), 1);
    assert.equal(value(text, 'seawall_poisoned_pages', { vm: 'vm-a' }), 2);
    assert.equal(value(text, 'seawall_verdict_latency_seconds_bucket', { le: '0.00005' }), 1);
    assert.equal(value(text, 'seawall_verdict_latency_seconds_bucket', { le: '0.000025' }), 0);
    assert.equal(value(text, 'seawall_verdict_latency_seconds_count'), 1);
  });

  it('exports every closed-label outcome at 0 before any event, so increase() sees the first', async () => {
    const text = await metrics().metricsText();
    for (const outcome of ['accepted', 'refused', 'failed', 'timed_out', 'dropped']) {
      assert.equal(value(text, 'seawall_migrations_total', { outcome }), 0);
    }
    for (const outcome of ['exited', 'sigkilled', 'failed']) {
      assert.equal(value(text, 'seawall_kills_total', { outcome }), 0);
    }
    for (const outcome of ['closed', 'protocol_error', 'rejected']) {
      assert.equal(value(text, 'seawall_plugin_sessions_ended_total', { outcome }), 0);
    }
    assert.equal(value(text, 'seawall_policy_reloads_total', { result: 'failure' }), 0);
    assert.equal(value(text, 'seawall_metrics_vm_series_evicted_total'), 0);
  });

  it('tracks open sessions and how they ended; a refusal leaves the gauge; an unbalanced close throws', async () => {
    const m = metrics();
    m.sessionOpened();
    m.sessionOpened();
    m.sessionClosed('closed');
    m.sessionRejected();
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_plugin_sessions'), 1);
    assert.equal(value(text, 'seawall_plugin_sessions_ended_total', { outcome: 'closed' }), 1);
    assert.equal(value(text, 'seawall_plugin_sessions_ended_total', { outcome: 'rejected' }), 1);
    m.sessionClosed('protocol_error');
    assert.throws(() => m.sessionClosed('closed'), assertMetricsError('SEAWALL_METRICS_UNBALANCED_SESSION'));
    assert.equal(value(await m.metricsText(), 'seawall_plugin_sessions'), 0);
  });

  it('records policy reloads: success replaces the info series, failure keeps it and drops the flag', async () => {
    const m = metrics();
    const sha = 'ab'.repeat(32);
    const before = Date.now() / 1000;
    m.policyReload(true, 'v1', sha);
    m.policyReload(true, 'v2');
    let text = await m.metricsText();
    assert.equal(find(text, 'seawall_policy_info').length, 1);
    assert.equal(value(text, 'seawall_policy_info', { version: 'v2', sha256: '' }), 1);
    assert.equal(value(text, 'seawall_policy_last_reload_successful'), 1);
    assert.ok(
      (value(text, 'seawall_policy_last_reload_success_timestamp_seconds') ?? 0) >= Math.floor(before),
    );
    m.policyReload(false, 'v3');
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_policy_last_reload_successful'), 0);
    assert.equal(value(text, 'seawall_policy_info', { version: 'v2', sha256: '' }), 1);
    assert.equal(value(text, 'seawall_policy_reloads_total', { result: 'success' }), 2);
    assert.equal(value(text, 'seawall_policy_reloads_total', { result: 'failure' }), 1);
    assert.throws(
      () => m.policyReload(true, 'v4', 'XYZ'),
      assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'),
    );
  });

  it('reads the store write-ahead queue at each scrape: the backlog as is, the waits added up', async () => {
    const m = metrics();
    let text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_pending_events'), 0, 'no store watched: 0');
    assert.equal(value(text, 'seawall_store_backpressure_seconds_total'), 0, 'exported from start');
    assert.equal(value(text, 'seawall_store_lost_total', { what: 'events' }), 0, 'exported from start');
    assert.equal(value(text, 'seawall_store_lost_total', { what: 'updates' }), 0, 'exported from start');
    assert.equal(value(text, 'seawall_store_session_holds_total'), 0, 'exported from start');
    const load = {
      pendingEvents: 120,
      heldEvents: 0,
      backpressureMs: 0,
      heldUpdates: 0,
      lostEvents: 0,
      lostUpdates: 0,
      sessionHolds: 0,
    };
    m.watchStore(() => load);
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_pending_events'), 120);
    // Held events too, as they are now: a health change is not needed to move the gauge.
    m.storeHealth(false, 0);
    load.heldEvents = 35;
    load.heldUpdates = 12;
    load.lostEvents = 4;
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_held_events'), 35);
    assert.equal(value(text, 'seawall_store_held_updates'), 12);
    assert.equal(value(text, 'seawall_store_lost_total', { what: 'events' }), 4);
    load.lostEvents = 9;
    load.lostUpdates = 2;
    text = await m.metricsText();
    assert.equal(
      value(text, 'seawall_store_lost_total', { what: 'events' }),
      9,
      'a running total, not added twice',
    );
    assert.equal(value(text, 'seawall_store_lost_total', { what: 'updates' }), 2);
    load.heldEvents = 0;
    load.heldUpdates = 0;
    m.storeHealth(true, 0);
    load.pendingEvents = 7;
    load.backpressureMs = 1500;
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_pending_events'), 7, 'the gauge is the value now');
    assert.equal(value(text, 'seawall_store_backpressure_seconds_total'), 1.5);
    load.backpressureMs = 1750;
    load.sessionHolds = 3;
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_backpressure_seconds_total'), 1.75);
    assert.equal(value(text, 'seawall_store_session_holds_total'), 3);
    load.sessionHolds = 5;
    assert.equal(value(await m.metricsText(), 'seawall_store_session_holds_total'), 5, 'a running total');
    load.backpressureMs = 250;
    assert.equal(
      value(await m.metricsText(), 'seawall_store_backpressure_seconds_total'),
      2,
      'a source that started again from 0: what it counted since is added, nothing subtracted',
    );
    // Not a count: the last values stay, and the scrape still answers with every other family.
    load.pendingEvents = -1;
    load.backpressureMs = Number.NaN;
    load.lostEvents = -3;
    text = await m.metricsText();
    assert.equal(value(text, 'seawall_store_pending_events'), 7);
    assert.equal(value(text, 'seawall_store_lost_total', { what: 'events' }), 9);
    assert.equal(value(text, 'seawall_store_backpressure_seconds_total'), 2);
    assert.equal(value(text, 'seawall_store_healthy'), 1);
  });

  it('exports build info with the given version and the running Node version', async () => {
    const text = await metrics({ version: '1.2.3' }).metricsText();
    assert.equal(value(text, 'seawall_build_info', { version: '1.2.3', node_version: process.version }), 1);
  });
});

describe('SeawallMetrics label validation', () => {
  it('throws SEAWALL_METRICS_INVALID_LABEL for values outside a closed set and records nothing', async () => {
    const m = metrics();
    const bad = (v: string) => v as never;
    assert.throws(
      () => m.memoryError('vm-a', bad('ecc'), 'uer'),
      assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'),
    );
    assert.throws(
      () => m.memoryError('vm-a', 'sea', bad('UER')),
      assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'),
    );
    assert.throws(() => m.action(bad('reboot'), 'r'), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    assert.throws(() => m.migration(bad('done')), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    assert.throws(() => m.kill(bad('maybe')), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    m.sessionOpened();
    assert.throws(() => m.sessionClosed(bad('eof')), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    const text = await m.metricsText();
    assert.equal(find(text, 'seawall_memory_errors_total').length, 0);
    assert.equal(m.trackedVms, 0, 'a rejected event must not take a VM slot');
    assert.equal(find(text, 'seawall_actions_total').length, 0);
    assert.equal(value(text, 'seawall_plugin_sessions'), 1);
  });

  it('rejects malformed open label values (empty, too long, control characters, not a string)', () => {
    const m = metrics();
    for (const vm of ['', 'x'.repeat(129), 'vm\n1', 'vm\u0000', 42 as unknown as string]) {
      assert.throws(
        () => m.memoryError(vm, 'sea', 'uer'),
        assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'),
      );
    }
    assert.throws(() => m.action('inject', ''), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    assert.throws(() => m.protocolError('a\tb'), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
    assert.equal(m.trackedVms, 0);
    m.memoryError('x'.repeat(128), 'sea', 'uer');
    m.memoryError('vm "quoted" \\ ünïcode', 'sea', 'uer');
    assert.equal(m.trackedVms, 2);
  });

  it('escapes label values in the exposition so they read back unchanged', async () => {
    const m = metrics();
    m.memoryError('vm "quoted" \\ ünïcode', 'mmio', 'unknown');
    assert.equal(
      value(await m.metricsText(), 'seawall_memory_errors_total', {
        vm: 'vm "quoted" \\ ünïcode',
        kind: 'mmio',
        severity: 'unknown',
      }),
      1,
    );
  });

  it('rejects negative, fractional and non-finite numbers', () => {
    const m = metrics();
    assert.throws(() => m.observeVerdictLatency(-1e-6), assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'));
    assert.throws(
      () => m.observeVerdictLatency(Number.NaN),
      assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'),
    );
    assert.throws(
      () => m.observeVerdictLatency(Infinity),
      assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'),
    );
    assert.throws(() => m.setPoisonedPages('vm-a', -1), assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'));
    assert.throws(() => m.setPoisonedPages('vm-a', 1.5), assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'));
    assert.throws(
      () => m.fallbackReported('vm-a', -3, 'replay'),
      assertMetricsError('SEAWALL_METRICS_INVALID_VALUE'),
    );
    assert.throws(
      () => m.fallbackReported('vm-a', 1, 'late' as 'applied'),
      assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'),
    );
    assert.equal(m.trackedVms, 0);
  });

  it('folds open label values past maxLabelValues into "other" and counts the fold', async () => {
    const m = metrics({ maxLabelValues: 2 });
    m.action('inject', 'r1');
    m.action('inject', 'r2');
    m.action('inject', 'r3');
    m.action('kill', 'r4');
    m.action('inject', 'r1');
    m.protocolError('a');
    m.protocolError('b');
    m.protocolError('c');
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_actions_total', { action: 'inject', rule: 'r1' }), 2);
    assert.equal(value(text, 'seawall_actions_total', { action: 'inject', rule: 'other' }), 1);
    assert.equal(value(text, 'seawall_actions_total', { action: 'kill', rule: 'other' }), 1);
    assert.equal(find(text, 'seawall_actions_total').length, 4);
    assert.equal(value(text, 'seawall_protocol_errors_total', { reason: 'other' }), 1);
    assert.equal(value(text, 'seawall_metrics_label_overflow_total', { label: 'rule' }), 2);
    assert.equal(value(text, 'seawall_metrics_label_overflow_total', { label: 'reason' }), 1);
  });

  it('rejects out-of-range options at construction', () => {
    for (const options of [
      { vmSeriesTtlSeconds: 0 },
      { vmSeriesTtlSeconds: Number.NaN },
      { maxVms: 0 },
      { maxVms: 1.5 },
      { maxLabelValues: -1 },
    ]) {
      assert.throws(() => metrics(options), assertMetricsError('SEAWALL_METRICS_INVALID_OPTION'));
    }
    assert.throws(() => metrics({ version: '' }), assertMetricsError('SEAWALL_METRICS_INVALID_LABEL'));
  });

  it('keeps each instance on its own registry, never the global one', async () => {
    const { register } = await import('prom-client');
    const a = metrics();
    const b = metrics();
    a.memoryError('vm-a', 'sea', 'uer');
    assert.equal(find(await b.metricsText(), 'seawall_memory_errors_total').length, 0);
    assert.equal(register.getSingleMetric('seawall_memory_errors_total'), undefined);
  });
});
