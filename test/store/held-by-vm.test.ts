/**
 * The bound on rows held through a fault is fair between VMs (store/held-by-vm.ts, used by
 * store/held-rows.ts `HeldRows`): past it the rows that leave memory are those of the VMs holding
 * the most, each one's oldest first, so a VM flooding the daemon through a long fault pushes out
 * its own rows, never a quieter VM's few; and the counts of what was dropped stay exact.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { EventRecord } from '../../events/index.js';
import { HeldRows, PendingKeys } from '../../store/held-rows.js';
import type { StoreRow } from '../../store/inserts.js';
import { lockedWriteAhead, record, scratchStore, session } from './records.js';

const T0 = Date.UTC(2026, 11, 6, 5, 0, 0);

/** `n` rows of `vm`, seqs from `from`, made by a scratch store (ids rising in the order made). */
function rowMaker(t: TestContext) {
  const store = scratchStore(t);
  const sessions = new Map<string, ReturnType<typeof session>>();
  return (vm: string, from: number, n: number): StoreRow[] => {
    let s = sessions.get(vm);
    if (s === undefined) {
      s = session(vm, BigInt(sessions.size + 1));
      sessions.set(vm, s);
    }
    const records: EventRecord[] = [];
    for (let seq = from; seq < from + n; seq++) records.push(record({ session: s, seq, timeMs: T0 + seq }));
    return store.rowsOf(records);
  };
}

const seqOf = (row: StoreRow) => row.key.seq;

/** The seqs held per VM, in the order `peek` gives them. */
function heldByVm(held: HeldRows): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const row of held.peek()) {
    const seqs = by.get(row.key.vm) ?? [];
    seqs.push(seqOf(row));
    by.set(row.key.vm, seqs);
  }
  return by;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const sum = (ns: number[]) => ns.reduce((a, b) => a + b, 0);
const sorted = (ns: number[]) => [...ns].sort((a, b) => a - b);

test('past the bound a flooding VM loses its own oldest rows; a quiet VM held before and during keeps all', (t) => {
  const rows = rowMaker(t);
  const keys = new PendingKeys();
  const drops: number[] = [];
  const held = new HeldRows(20, keys, (n) => drops.push(n));
  const order: StoreRow[] = [];
  const hold = (batch: StoreRow[]) => {
    held.hold(batch);
    order.push(...batch);
  };
  hold(rows('vm-quiet', 1, 2));
  // 60 rows of the flood in batches of 5, the quiet VM's two more among them.
  for (let from = 1; from <= 60; from += 5) {
    hold(rows('vm-flood', from, 5));
    if (from === 26) hold(rows('vm-quiet', 3, 1));
    if (from === 51) hold(rows('vm-quiet', 4, 1));
  }
  const by = heldByVm(held);
  assert.deepEqual(by.get('vm-quiet'), [1, 2, 3, 4], 'every row of the quiet VM is held');
  assert.deepEqual(by.get('vm-flood'), range(45, 16), 'the flood keeps its newest, in order');
  assert.equal(held.length, 20);
  assert.equal(held.dropped, 44, 'the flood’s oldest 44 dropped');
  assert.equal(sum(drops), 44, 'and reported');
  assert.equal(keys.size, 20, 'the keys of the dropped rows are forgotten, once each');
  for (const seq of [1, 2, 3, 4])
    assert.ok(keys.has({ vm: 'vm-quiet', seq, time: keyTime(order, 'vm-quiet', seq) }));
  assert.ok(!keys.has({ vm: 'vm-flood', seq: 44, time: keyTime(order, 'vm-flood', 44) }));
  // peek gives the rows in the order held.
  const kept = new Set(held.peek());
  assert.deepEqual(
    held.peek(),
    order.filter((r) => kept.has(r)),
    'in the order held',
  );
  held.clear();
  assert.deepEqual([held.length, keys.size, held.dropped], [0, 0, 44]);
});

function keyTime(order: StoreRow[], vm: string, seq: number): bigint {
  const row = order.find((r) => r.key.vm === vm && seqOf(r) === seq);
  assert.ok(row);
  return row.key.time;
}

test('past the bound the VMs holding the most come down to one level, each losing its oldest', (t) => {
  const rows = rowMaker(t);
  const held = new HeldRows(40, new PendingKeys(), () => {});
  // One batch of three VMs' rows, interleaved: 30 of vm-a, 20 of vm-b, 3 of vm-c. 13 too many:
  // vm-a and vm-b come down to 18 and 19 rows between them (in either order), vm-c keeps its 3.
  const a = rows('vm-a', 1, 30);
  const b = rows('vm-b', 1, 20);
  const c = rows('vm-c', 1, 3);
  const batch: StoreRow[] = [];
  for (let i = 0; i < 30; i++) batch.push(...[a[i], b[i], c[i]].filter((r) => r !== undefined));
  held.hold(batch);
  let by = heldByVm(held);
  const counts = () => ['vm-a', 'vm-b', 'vm-c'].map((vm) => by.get(vm)?.length ?? 0);
  assert.equal(counts()[2], 3);
  assert.deepEqual(sorted(counts().slice(0, 2)), [18, 19]);
  assert.deepEqual(
    by.get('vm-a'),
    range(31 - (counts()[0] as number), counts()[0] as number),
    'vm-a keeps its newest',
  );
  assert.deepEqual(
    by.get('vm-b'),
    range(21 - (counts()[1] as number), counts()[1] as number),
    'vm-b keeps its newest',
  );
  assert.equal(held.dropped, 13);
  // vm-c's 10 more: vm-a and vm-b come down to 13 and 14, vm-c keeps its 13.
  held.hold(rows('vm-c', 4, 10));
  by = heldByVm(held);
  assert.deepEqual(sorted(counts()), [13, 13, 14]);
  assert.deepEqual(by.get('vm-c'), range(1, 13));
  assert.equal(held.dropped, 23);
});

test('rows of any VM held in random batches: no VM that lost a row holds fewer than the most held, less one', (t) => {
  const rows = rowMaker(t);
  const vms = ['vm-a', 'vm-b', 'vm-c', 'vm-d', 'vm-e'];
  const made = new Map(vms.map((vm) => [vm, rows(vm, 1, 400)]));
  const next = new Map(vms.map((vm) => [vm, 0]));
  const keys = new PendingKeys();
  let reported = 0;
  const held = new HeldRows(50, keys, (n) => {
    reported += n;
  });
  let seed = 11;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed;
  };
  let total = 0;
  for (let round = 0; round < 150; round++) {
    // A VM's flood, or a few rows of several.
    const batch: StoreRow[] = [];
    const n = 1 + (random() % 12);
    for (let i = 0; i < n; i++) {
      const vm = vms[round % 3 === 0 ? random() % vms.length : random() % 2] as string;
      const at = next.get(vm) as number;
      if (at >= 400) continue;
      batch.push((made.get(vm) as StoreRow[])[at] as StoreRow);
      next.set(vm, at + 1);
    }
    const before = heldByVm(held);
    held.hold(batch);
    total += batch.length;
    const after = heldByVm(held);
    const count = (by: Map<string, number[]>, vm: string) => by.get(vm)?.length ?? 0;
    const most = Math.max(...vms.map((vm) => count(after, vm)));
    for (const vm of vms) {
      const seqs = after.get(vm) ?? [];
      const heldSoFar = next.get(vm) as number;
      // Each VM's held rows are its newest, in order.
      assert.deepEqual(seqs, range(heldSoFar - seqs.length + 1, seqs.length), `${vm}, round ${round}`);
      const added = batch.filter((r) => r.key.vm === vm).length;
      const lost = count(before, vm) + added - seqs.length;
      if (lost > 0) assert.ok(seqs.length >= most - 1, `${vm} lost ${lost} at ${seqs.length}, most ${most}`);
    }
    assert.equal(held.length, Math.min(total, 50));
    assert.equal(held.dropped, total - held.length, `round ${round}`);
    assert.equal(reported, held.dropped);
    assert.equal(keys.size, held.length);
  }
});

test('a quiet VM’s rows held through a flood past maxHeld are stored when the fault clears', async (t) => {
  const { store, ahead, errors, recovered } = lockedWriteAhead(t, { maxHeld: 10 });
  const quiet = session('vm-quiet', 1n);
  const flood = session('vm-flood', 2n);
  ahead.record([record({ session: flood, seq: 1000, timeMs: T0 })]);
  ahead.flush(); // the commit fails on the lock: a fault
  assert.equal(ahead.health.healthy, false);
  const answer = (s: typeof quiet, seq: number) =>
    ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  // The copy keeps the first 10 held: the quiet VM's first and the flood's first 9. The quiet
  // VM's 2 later rows are in memory only.
  answer(quiet, 1);
  for (let seq = 1; seq <= 40; seq++) {
    answer(flood, seq);
    if (seq % 15 === 0) answer(quiet, 1 + seq / 15);
  }
  // The flood's last 7 stay in memory with the quiet VM's 3; its first 9 are in the copy only,
  // held there too.
  assert.equal(ahead.health.heldRows, 10 + 9);
  assert.equal(ahead.health.droppedRows, 24, 'only the flood’s rows are dropped');
  assert.ok(errors.some((e) => /held events dropped past the 10-event bound/.test(e)));
  await recovered();
  const seqs = (vm: string) =>
    store.db.prepare('SELECT seq FROM events WHERE vm = ? ORDER BY seq').pluck().all(vm);
  assert.deepEqual(seqs('vm-quiet'), [1, 2, 3], 'every row of the quiet VM is stored');
  assert.deepEqual(
    seqs('vm-flood'),
    [...range(1, 9), ...range(34, 7), 1000],
    'the flood’s copied and newest',
  );
  assert.equal(ahead.health.droppedRows, 24);
});
