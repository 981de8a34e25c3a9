/**
 * The poisoned-page gauge's memory: bounded in pages and in VMs, one VM inventing addresses uses
 * up only its own share, and a VM forgotten for the bound gets its exact count back from a real
 * store (its reader thread) when it connects again.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { metricsSink } from '../../../daemon/sinks/metrics-sink.js';
import { PoisonedPageCounts } from '../../../daemon/sinks/poisoned-page-counts.js';
import { SeawallMetrics } from '../../../metrics/index.js';
import { EventStore, StoreReader } from '../../../store/index.js';
import { until, within } from '../../helpers/wait.js';
import { value } from '../../metrics/exposition.js';
import { record, session, tempStorePath } from '../../store/records.js';

test('a VM inventing pages fills its own share, and another VM’s repeated page still counts once', () => {
  const counts = new PoisonedPageCounts({ maxPages: 20, maxPagesPerVm: 10 });
  for (let n = 0; n < 50; n++) counts.add('flood', BigInt(n) << 12n);
  assert.equal(counts.count('flood'), 50, 'every page counted; past its share, without being remembered');
  assert.equal(counts.add('quiet', 0x7000n), 1);
  assert.equal(counts.add('quiet', 0x7000n), null, 'a repeat is not counted again');
  assert.equal(counts.count('quiet'), 1);
  // Past the bound in all, a repeat counts again: the price of the bound, paid once 2 VMs flood here.
  for (let n = 0; n < 50; n++) counts.add('flood-2', BigInt(n) << 12n);
  assert.equal(counts.add('late', 0x9000n), 1);
  assert.equal(counts.add('late', 0x9000n), 2);
});

test('a plugin inventing VM ids grows no map: past maxVms a VM without a session is forgotten', () => {
  const counts = new PoisonedPageCounts({ maxVms: 8 });
  const known: string[] = [];
  for (const vm of ['live-a', 'live-b']) {
    counts.connected(vm, () => known.push(vm));
    counts.add(vm, 0x1000n);
    counts.add(vm, 0x2000n);
  }
  // One session and one page each, 10,000 times.
  for (let n = 0; n < 10_000; n++) {
    const vm = `invented-${n}`;
    counts.connected(vm, () => known.push(vm));
    assert.equal(counts.add(vm, 0x1000n), 1);
    counts.departed(vm);
  }
  assert.equal(counts.vms, 8);
  assert.equal(counts.forgotten, 10_000 + 2 - 8);
  assert.equal(counts.count('live-a'), 2, 'a VM with a session is never forgotten');
  assert.equal(counts.add('live-b', 0x2000n), null, 'its pages are still known');
  assert.equal(counts.count('invented-0'), 0, 'forgotten');
  assert.equal(counts.count('invented-9999'), 1);
  assert.deepEqual(known, [], 'no store to read forgotten VMs back from');
});

test('a VM stays remembered while any of its sessions is open, however they overlap', () => {
  const counts = new PoisonedPageCounts({ maxVms: 2 });
  counts.connected('vm-x', () => {});
  counts.add('vm-x', 0x1000n);
  // The VMM reconnected while its old session was still closing; then the old one ends.
  counts.connected('vm-x', () => {});
  counts.departed('vm-x');
  for (let n = 0; n < 10; n++) {
    counts.connected(`invented-${n}`, () => {});
    counts.add(`invented-${n}`, 0x1000n);
    counts.departed(`invented-${n}`);
  }
  assert.equal(counts.count('vm-x'), 1, 'its new session is open: not forgotten');
  counts.departed('vm-x');
  counts.add('other', 0x1000n);
  assert.equal(counts.count('vm-x'), 0, 'forgotten once its last session ended');
});

function readableStore(t: { after: (fn: () => void) => void }) {
  const { dir, path } = tempStorePath();
  const store = new EventStore({ path });
  const reader = new StoreReader(store);
  t.after(() => {
    reader.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, reader };
}

test('a forgotten VM that connects again gets its stored count back, exact, read on the reader thread', async (t) => {
  const { store, reader } = readableStore(t);
  // vm-a: three pages, one of them twice; then two more VMs.
  const rows = [
    ['vm-a', 0x1000n],
    ['vm-a', 0x2000n],
    ['vm-a', 0x1000n],
    ['vm-a', 0x3000n],
    ['vm-b', 0x1000n],
    ['vm-c', 0x1000n],
  ] as const;
  store.append(
    rows.map(([vm, gpa], i) =>
      record({ session: session(vm), seq: i + 1, timeMs: 1_700_000_000_000 + i, gpa }),
    ),
  );
  // Seeded in the store's order with room for two VMs: vm-a is forgotten.
  const counts = PoisonedPageCounts.fromStore(store.queries, { maxVms: 2 }, reader);
  assert.equal(counts.count('vm-a'), 0);
  assert.equal(counts.forgotten, 1);
  const told = new Promise<number>((resolve) => counts.connected('vm-a', resolve));
  // A page that fails while its stored pages are read: counted once they are, and not before.
  assert.equal(counts.add('vm-a', 0x4000n), null, 'no count told while the read is under way');
  assert.equal(await within('vm-a’s pages to be read back', told), 4, 'three stored pages and the one since');
  assert.equal(counts.add('vm-a', 0x2000n), null, 'a stored page is not counted again');
  assert.equal(counts.add('vm-a', 0x5000n), 5);
});

test('the gauge of a VM forgotten for the bound comes back when its next session opens', async (t) => {
  const { store, reader } = readableStore(t);
  let clock = 0;
  const m = new SeawallMetrics({ defaultMetrics: false, vmSeriesTtlSeconds: 1, now: () => clock });
  const sink = metricsSink(m, undefined, new PoisonedPageCounts({ maxVms: 1 }, reader));
  // As the daemon runs: a session, its events stored and counted, the session ends.
  let seq = 0;
  const visit = (vm: string, id: bigint, gpas: bigint[]) => {
    const s = session(vm, id);
    sink.sessionOpened?.(s);
    const batch = gpas.map((gpa) => record({ session: s, seq: ++seq, timeMs: 1_700_000_000_000 + seq, gpa }));
    store.append(batch);
    sink.afterReply?.(batch);
    sink.sessionClosed?.(s, 'normal', null);
  };
  visit('vm-a', 1n, [0x1000n, 0x2000n]);
  visit('vm-b', 2n, [0x1000n]);
  // vm-a was forgotten for vm-b; its series are gone an hour later.
  clock += 3_600_000;
  m.sweep();
  const gauge = async (vm: string) => value(await m.metricsText(), 'seawall_poisoned_pages', { vm });
  assert.equal(await gauge('vm-a'), undefined);
  sink.sessionOpened?.(session('vm-a', 3n));
  await until('vm-a’s gauge to come back', async () => (await gauge('vm-a')) === 2);
  // And a page it had before is not counted again.
  const again = record({
    session: session('vm-a', 3n),
    seq: ++seq,
    timeMs: 1_700_000_000_000 + seq,
    gpa: 0x2000n,
  });
  sink.afterReply?.([again]);
  assert.equal(await gauge('vm-a'), 2);
});
