/**
 * An APPLIED result reaches its event's row whatever order the segments commit in. Through a
 * store fault results wait in memory for the retry with the rows, but the segment with the event's
 * row can still commit after a later one that carries the result: a retry commits the result while
 * the row's segment fails again. The fault here is another connection holding the write lock, and
 * a row's segment that cannot be read.
 */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { EventStore, WriteAhead } from '../../store/index.js';
import { prune } from '../../store/prune.js';
import { COL } from '../../store/rows.js';
import { segmentPath } from '../../store/segments.js';
import type { AppliedUpdate } from '../../store/updates.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, tempStorePath, threadedStore } from './records.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** APPLIED results waiting for their rows, as committed. */
function waiting(path: string): number {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT COUNT(*) FROM applied_waiting').pluck().get() as number;
  } finally {
    db.close();
  }
}

/** Each event's APPLIED result, by seq, as committed. */
function appliedBySeq(path: string): Record<number, number | null> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT seq, applied FROM events ORDER BY seq').all() as {
      seq: number;
      applied: number | null;
    }[];
    return Object.fromEntries(rows.map((r) => [r.seq, r.applied]));
  } finally {
    db.close();
  }
}

test('on the event loop: results for a row whose commit failed, and for a row held, wait for the retry and land on their rows', (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  // No timer hands over or retries during the test: `flush` and `close` do, in a known order.
  const ahead = new WriteAhead(store, { thread: false, flushMs: 60_000, checkMs: 60_000 });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-o', 4n);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  const release = lockDatabase(t, path);
  ahead.flush();
  assert.equal(ahead.health.healthy, false, 'the segment with seq 1 failed to commit');
  // Answered while faulty: held in memory until the fault's retry writes it ahead.
  ahead.record([record({ session: s, seq: 2, timeMs: T0 + 2 })]);
  assert.equal(ahead.health.heldRows, 1);
  release();
  store.markApplied(4n, 1, -5);
  store.markApplied(4n, 2, -14, 3);
  // Held through the fault: the failed segment is committed here, the held row and the results at close.
  ahead.flush();
  ahead.close();
  assert.deepEqual(appliedBySeq(path), { 1: -5, 2: -14 });
  assert.equal(
    store.db.prepare('SELECT fallback_action FROM events WHERE seq = 2').pluck().get(),
    3,
    'the fallback the guest got, from the result that waited for its row',
  );
});

test('writer thread: a result committed at a retry while its row still fails lands on the row when the row commits', async (t) => {
  const { path, store, ahead, errors } = threadedStore(t, {}, { flushMs: 5 });
  const dir = dirname(path);
  const s = session('vm-t', 6n);
  const release = lockDatabase(t, path);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  await until('the thread to fail the segment with seq 1', () => !ahead.health.healthy);
  // The row's segment cannot be read for now (a symlink, never followed, to a file that exists):
  // its retries fail while the database takes the rest. Swapped in one rename, as it is put back
  // below: a thread reading it meanwhile must never find it gone or empty (either would count its
  // row as committed).
  const segment = segmentPath(`${path}.pending`, 1);
  const text = readFileSync(segment);
  writeFileSync(join(dir, 'elsewhere'), '');
  symlinkSync(join(dir, 'elsewhere'), join(dir, 'link'));
  renameSync(join(dir, 'link'), segment);
  // A retry may have read the row before the file went, and wait for the lock: were the lock
  // released now, it would commit the row, and the result would land on it without waiting.
  // Released once a retry has found the segment unreadable: every attempt before it has failed.
  await until('a retry to find the segment unreadable', () => errors.some((m) => /ELOOP/.test(m)));
  release();
  // Held through the fault, then committed by a retry in a segment of its own.
  store.markApplied(6n, 1, -5);
  await until('the result to wait for its row', () => waiting(path) === 1, {
    state: () => `${ahead.pending} pending, ${ahead.health.heldUpdates} updates in memory`,
  });
  writeFileSync(join(dir, 'whole'), text);
  renameSync(join(dir, 'whole'), segment);
  await until('a retry to commit the row', () => ahead.health.healthy && ahead.pending === 0);
  ahead.close();
  assert.deepEqual(appliedBySeq(path), { 1: -5 });
  assert.equal(waiting(path), 0, 'taken by the row');
});

test('a waiting result is taken by its row once, a second result for a row that has one is not kept, and retention prunes the rest', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, bootId: 'b' });
  const DAY = 86_400_000;
  const waiting = store.db.prepare('SELECT ord FROM applied_waiting ORDER BY ord').pluck();
  // Results for orders 1 and 2 of session 9, rows 7 and 1; neither event is stored (yet).
  store.updateHere([9, 1, -5, T0 - 100 * DAY, null, 7]);
  store.updateHere([9, 2, -6, T0, null, 1]);
  assert.deepEqual(waiting.all(), [1, 2]);
  store.append([record({ session: session('vm-p', 9n), seq: 2, timeMs: T0 })]);
  assert.deepEqual(appliedBySeq(path), { 2: -6 });
  assert.deepEqual(waiting.all(), [1], "order 2's result went to its row");
  store.updateHere([9, 2, -7, T0, null, 1]);
  assert.deepEqual(waiting.all(), [1], 'a row keeps its first result; the second is not kept either');
  const env = { clock: () => 0, pause: () => undefined, stopped: () => false };
  await prune(store.db, { cutoffMs: T0 - 90 * DAY, maxBytes: 1 << 30, chunkRows: 100, sliceMs: 10 }, env);
  assert.deepEqual(waiting.all(), [], 'a result older than the cutoff goes with retention');
  assert.deepEqual(appliedBySeq(path), { 2: -6 });
  store.close();
});

/** Each event's outcome columns, by seq. */
function outcomes(store: EventStore): Record<number, [number | null, number | null, number | null]> {
  const rows = store.db
    .prepare('SELECT seq, applied, applied_ms, fallback_action FROM events ORDER BY seq')
    .raw()
    .all() as [number, number | null, number | null, number | null][];
  return Object.fromEntries(rows.map(([seq, ...rest]) => [seq, rest]));
}

test('results in the same write as their rows are set with the insert, leaving the rows an update after it would', () => {
  const { dir } = tempStorePath();
  dirs.push(dir);
  const s = session('vm-w', 4n);
  const rec = (seq: number, replay = false) => record({ session: s, seq, timeMs: T0 + seq, replay });
  const batch = [rec(1), rec(2), rec(3), rec(4), rec(5), rec(6, true)];
  // [order, result, ms, fallback]: the rows are ids 1 to 6, in order.
  const results: AppliedUpdate[] = (
    [
      [1, 0, T0 + 1001, null],
      [2, -22, T0 + 1002, 3],
      [3, -5, T0 + 1003, null],
      [3, 0, T0 + 1004, null],
      [4, -1, T0 + 1005, null],
      [5, -2, T0 + 1006, null],
      [6, 0, T0 + 1007, null],
    ] as const
  ).map(([ord, result, ms, fallback]) => [4, ord, result, ms, fallback, ord]);
  // Seq 4 is stored before; seq 5's result was kept waiting before its row came.
  const waited: AppliedUpdate = [4, 5, -9, T0 + 900, 2, 5];
  const run = (sameWrite: boolean) => {
    const store = new EventStore({ path: join(dir, `${sameWrite}.sqlite`), bootId: 'b' });
    const rows = store.rowsOf(batch).map((r) => r.values);
    assert.deepEqual(
      rows.map((v) => v[COL.id]),
      [1, 2, 3, 4, 5, 6],
    );
    store.appendRows([rows[3]!]);
    store.updateHere(waited);
    if (sameWrite) assert.deepEqual(store.appendRows(rows, results), { inserted: 5, duplicates: 1 });
    else {
      store.appendRows(rows);
      for (const u of results) store.updateHere(u);
    }
    const out = outcomes(store);
    assert.equal(store.db.prepare('SELECT COUNT(*) FROM applied_waiting').pluck().get(), 0);
    store.close();
    return out;
  };
  const same = run(true);
  assert.deepEqual(same, {
    1: [0, T0 + 1001, null],
    2: [-22, T0 + 1002, 3], // the fallback the plugin applied instead
    3: [-5, T0 + 1003, null], // the first result wins
    4: [-1, T0 + 1005, null], // stored before: updated
    5: [-9, T0 + 900, 2], // the result kept waiting came first
    6: [0, T0 + 1007, 3], // a replay keeps the fallback it reported
  });
  assert.deepEqual(same, run(false), 'the same rows as results written after them');
});
