/**
 * An APPLIED result reaches its event's row whatever order the segments commit in. Through a
 * store fault the segment with the event's row can commit after a later one that carries the
 * result: the row's commit failed and waits for its retry, or the row is held in memory, while the
 * result goes with the next hand-over. The fault here is another connection holding the write
 * lock, released before the later segment commits.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import { EventStore, WriteAhead } from '../../store/index.js';
import { prune } from '../../store/prune.js';
import { until } from '../helpers/wait.js';
import { record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Another connection holding the write lock; released by the returned function, or after the test. */
function lockDatabase(t: TestContext, path: string): () => void {
  const db = new Database(path);
  db.exec('BEGIN IMMEDIATE');
  const release = () => {
    if (!db.open) return;
    db.exec('ROLLBACK');
    db.close();
  };
  t.after(release);
  return release;
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

test('on the event loop: results for a row whose commit failed, and for a row held, commit before their rows and still land on them', (t) => {
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
  // The results' segment is committed first; the failed segment next; the held row at close.
  ahead.flush();
  ahead.close();
  assert.deepEqual(appliedBySeq(path), { 1: -5, 2: -14 });
  assert.equal(
    store.db.prepare('SELECT fallback_action FROM events WHERE seq = 2').pluck().get(),
    3,
    'the fallback the guest got, from the result that waited for its row',
  );
});

test('writer thread: a result committed while its row waits for a retry lands on the row when the retry commits it', async (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  const ahead = new WriteAhead(store, { flushMs: 5, checkMs: 60_000 });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-t', 6n);
  const release = lockDatabase(t, path);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  await until('the thread to fail the segment with seq 1', () => !ahead.health.healthy);
  release();
  store.markApplied(6n, 1, -5);
  // The thread commits the result's segment; the failed one waits for the (once-a-minute) retry.
  await until('the thread to commit the result', () => ahead.writerCommits === 1, {
    state: () => `${ahead.writerCommits} commits, ${ahead.pending} pending`,
  });
  assert.equal(ahead.pending, 1, 'the row itself is still uncommitted');
  ahead.close();
  assert.deepEqual(appliedBySeq(path), { 1: -5 });
});

test('a waiting result is taken by its row once, a second result for a row that has one is not kept, and retention prunes the rest', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, bootId: 'b' });
  const DAY = 86_400_000;
  const waiting = store.db.prepare('SELECT ord FROM applied_waiting ORDER BY ord').pluck();
  // Results for orders 1 and 2 of session 9; neither event is stored (yet).
  store.updateHere([9, 1, -5, T0 - 100 * DAY, null]);
  store.updateHere([9, 2, -6, T0, null]);
  assert.deepEqual(waiting.all(), [1, 2]);
  store.append([record({ session: session('vm-p', 9n), seq: 2, timeMs: T0 })]);
  assert.deepEqual(appliedBySeq(path), { 2: -6 });
  assert.deepEqual(waiting.all(), [1], "order 2's result went to its row");
  store.updateHere([9, 2, -7, T0, null]);
  assert.deepEqual(waiting.all(), [1], 'a row keeps its first result; the second is not kept either');
  const env = { clock: () => 0, pause: () => undefined, stopped: () => false };
  await prune(store.db, { cutoffMs: T0 - 90 * DAY, maxBytes: 1 << 30, chunkRows: 100, sliceMs: 10 }, env);
  assert.deepEqual(waiting.all(), [], 'a result older than the cutoff goes with retention');
  assert.deepEqual(appliedBySeq(path), { 2: -6 });
  store.close();
});
