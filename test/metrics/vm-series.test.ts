import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeawallMetrics } from '../../metrics/index.js';
import { find, value } from './exposition.js';

/** A SeawallMetrics on a hand-driven clock (milliseconds). */
function clocked(options: { vmSeriesTtlSeconds?: number; maxVms?: number } = {}) {
  const clock = { ms: 1_000_000 };
  const m = new SeawallMetrics({ defaultMetrics: false, now: () => clock.ms, ...options });
  return { m, clock };
}

/** One session of `vm` that records a memory error. */
function visit(m: SeawallMetrics, vm: string): void {
  m.vmConnected(vm);
  m.memoryError(vm, 'sea', 'uer');
  m.vmDeparted(vm);
}

async function vmsIn(m: SeawallMetrics): Promise<string[]> {
  const text = await m.metricsText();
  const vms = new Set<string>();
  for (const family of [
    'seawall_memory_errors_total',
    'seawall_poisoned_pages',
    'seawall_fallback_events_reported_total',
  ]) {
    for (const s of find(text, family)) vms.add(s.labels.vm!);
  }
  return [...vms].sort();
}

describe('VM series lifetime (TTL)', () => {
  it('removes every series of a departed VM once it has not been seen for the TTL', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    m.vmConnected('vm-a');
    m.vmConnected('vm-b');
    m.memoryError('vm-a', 'sea', 'uer');
    m.memoryError('vm-a', 'sigbus', 'unknown');
    m.setPoisonedPages('vm-a', 2);
    m.fallbackReported('vm-a', 1, 'replay');
    m.fallbackReported('vm-a', 1, 'applied');
    m.memoryError('vm-b', 'sea', 'uer');
    m.vmDeparted('vm-a');

    clock.ms += 59_999;
    assert.equal(m.sweep(), 0);
    assert.deepEqual(await vmsIn(m), ['vm-a', 'vm-b']);

    clock.ms += 1;
    assert.equal(m.sweep(), 1);
    assert.deepEqual(await vmsIn(m), ['vm-b']);
    assert.equal(m.trackedVms, 1);
    assert.equal(value(await m.metricsText(), 'seawall_metrics_vms_tracked'), 1);
  });

  it('never expires a live VM on time alone', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    m.vmConnected('vm-a');
    m.memoryError('vm-a', 'sea', 'uer');
    clock.ms += 24 * 3600 * 1000;
    assert.equal(m.sweep(), 0);
    assert.deepEqual(await vmsIn(m), ['vm-a']);
  });

  it('counts the TTL from the last sighting; only a new session makes a departed VM live again', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    visit(m, 'vm-a');
    clock.ms += 50_000;
    m.vmConnected('vm-a'); // a new session reports its fallback events
    m.fallbackReported('vm-a', 3, 'replay');
    clock.ms += 3600_000;
    assert.equal(m.sweep(), 0, 'live again: no TTL');
    m.vmDeparted('vm-a');
    clock.ms += 60_000;
    assert.equal(m.sweep(), 1);
    assert.deepEqual(await vmsIn(m), []);
  });

  it('expires a VM recorded after its session closed: a late record dates the departure anew, never makes it live', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    visit(m, 'vm-a');
    // Replays still queued when the plugin went away are counted after its session closed.
    clock.ms += 30_000;
    m.memoryError('vm-a', 'sea', 'uer');
    m.fallbackReported('vm-a', 1, 'replay');
    clock.ms += 59_999;
    assert.equal(m.sweep(), 0, 'kept for the TTL after the last sighting');
    clock.ms += 1;
    assert.equal(m.sweep(), 1, 'and then removed');
    assert.deepEqual(await vmsIn(m), []);
  });

  it('keeps a VM live while any of its sessions is open: an old one closing after a new one opened', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    m.vmConnected('vm-a');
    m.memoryError('vm-a', 'sea', 'uer');
    m.vmConnected('vm-a'); // the VMM reconnected while its old session was still closing
    m.vmDeparted('vm-a'); // the old session ends
    clock.ms += 3600_000;
    assert.equal(m.sweep(), 0, 'the new session is open');
    assert.deepEqual(await vmsIn(m), ['vm-a']);
    m.vmDeparted('vm-a');
    clock.ms += 60_000;
    assert.equal(m.sweep(), 1);
  });

  it('expires a VM recorded with no session at all', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 60 });
    m.setPoisonedPages('vm-late', 1);
    clock.ms += 60_000;
    assert.equal(m.sweep(), 1);
    assert.equal(m.trackedVms, 0);
  });

  it('starts a VM from zero when it comes back after its series expired', async () => {
    const { m, clock } = clocked({ vmSeriesTtlSeconds: 1 });
    m.memoryError('vm-a', 'sea', 'uer');
    m.memoryError('vm-a', 'sea', 'uer');
    m.vmDeparted('vm-a');
    clock.ms += 1000;
    m.sweep();
    m.memoryError('vm-a', 'sea', 'uer');
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_memory_errors_total', { vm: 'vm-a', kind: 'sea', severity: 'uer' }), 1);
  });

  it('ignores departure of a VM that never recorded anything', () => {
    const { m } = clocked();
    m.vmDeparted('vm-never');
    assert.equal(m.trackedVms, 0);
  });

  it('runs the sweep from an unref’d timer that start()/stop() control', async () => {
    const { m } = clocked();
    m.start();
    m.start();
    m.stop();
    m.stop();
    // Nothing to await: if the timer were ref'd and left running, the test process would not exit.
    assert.equal(m.trackedVms, 0);
  });
});

describe('VM series bound (maxVms)', () => {
  it('evicts the least recently seen VM past maxVms and counts the eviction', async () => {
    const { m, clock } = clocked({ maxVms: 3 });
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) {
      m.vmConnected(vm);
      m.memoryError(vm, 'sea', 'uer');
      clock.ms += 1000;
    }
    m.setPoisonedPages('vm-1', 1); // vm-1 is now the most recently seen; vm-2 the least
    clock.ms += 1000;
    m.memoryError('vm-4', 'nisv', 'unknown');
    assert.deepEqual(await vmsIn(m), ['vm-1', 'vm-3', 'vm-4']);
    assert.equal(m.trackedVms, 3);
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_metrics_vm_series_evicted_total'), 1);
    assert.equal(value(text, 'seawall_memory_errors_total', { vm: 'vm-1', kind: 'sea', severity: 'uer' }), 1);
  });

  it('keeps the order of sightings through repeated ones, so eviction stays least recent first', async () => {
    const { m } = clocked({ maxVms: 3 });
    for (const vm of ['vm-1', 'vm-2', 'vm-3', 'vm-4', 'vm-5']) m.vmConnected(vm);
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) m.memoryError(vm, 'sea', 'uer');
    // Seen again: vm-3 was the newest, then vm-1 was; vm-3 is the most recent once more.
    for (const vm of ['vm-3', 'vm-3', 'vm-1', 'vm-1', 'vm-3']) m.memoryError(vm, 'sea', 'uer');
    m.memoryError('vm-4', 'sea', 'uer'); // evicts vm-2
    m.memoryError('vm-5', 'sea', 'uer'); // evicts vm-1, seen before vm-3's last sighting
    assert.deepEqual(await vmsIn(m), ['vm-3', 'vm-4', 'vm-5']);
    const text = await m.metricsText();
    assert.equal(value(text, 'seawall_memory_errors_total', { vm: 'vm-3', kind: 'sea', severity: 'uer' }), 4);
  });

  it('evicts departed VMs before live ones, oldest departure first', async () => {
    const { m, clock } = clocked({ maxVms: 3 });
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) {
      m.vmConnected(vm);
      m.memoryError(vm, 'sea', 'uer');
      clock.ms += 1000;
    }
    m.vmDeparted('vm-3');
    clock.ms += 1000;
    m.vmDeparted('vm-2');
    for (const vm of ['vm-4', 'vm-5', 'vm-6']) m.vmConnected(vm);
    m.memoryError('vm-4', 'sea', 'uer');
    assert.deepEqual(await vmsIn(m), ['vm-1', 'vm-2', 'vm-4']);
    m.memoryError('vm-5', 'sea', 'uer');
    assert.deepEqual(await vmsIn(m), ['vm-1', 'vm-4', 'vm-5']);
    m.memoryError('vm-6', 'sea', 'uer');
    assert.deepEqual(await vmsIn(m), ['vm-4', 'vm-5', 'vm-6']);
    assert.equal(value(await m.metricsText(), 'seawall_metrics_vm_series_evicted_total'), 3);
  });

  it('holds the bound under churn of many distinct VMs', async () => {
    const { m, clock } = clocked({ maxVms: 50 });
    for (let i = 0; i < 5000; i++) {
      m.vmConnected(`vm-${i}`);
      m.memoryError(`vm-${i}`, 'sea', 'uer');
      if (i % 3 === 0) m.vmDeparted(`vm-${i}`);
      clock.ms += 10;
    }
    assert.equal(m.trackedVms, 50);
    const text = await m.metricsText();
    assert.equal(find(text, 'seawall_memory_errors_total').length, 50);
    assert.equal(value(text, 'seawall_metrics_vm_series_evicted_total'), 4950);
  });
});
