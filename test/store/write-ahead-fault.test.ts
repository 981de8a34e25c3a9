/**
 * A store fault under a steady stream of events (the write lock held by another connection): the
 * verdict path never waits for the writer thread while the store is faulty — the rows answered
 * meanwhile are held in memory under their own bound, not written ahead into segments that pile
 * up in flight until the in-flight bound makes every hand-over wait — and once the lock is
 * released every answered row is stored exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, threadedStore } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

test('through a lock fault under a steady stream the verdict path never waits for the writer thread; then every row is stored once', async (t) => {
  const health: boolean[] = [];
  const { path, store, ahead } = threadedStore(
    t,
    {},
    { flushMs: 5, maxInFlight: 1000, waitMs: 200, onHealth: (h) => health.push(h.healthy) },
  );
  const s = session('vm-s', 1n);
  let seq = 0;
  const batch = (n: number) => {
    const rows = [];
    for (let i = 0; i < n; i++, seq++)
      rows.push(
        record({ session: s, seq: seq + 1, timeMs: T0 + seq, gpa: BigInt(0x9000_0000 + (seq % 512) * 4096) }),
      );
    ahead.record(rows);
  };
  batch(1);
  ahead.flush(); // the writer thread runs, and has committed the first row
  assert.ok(ahead.writerRunning && ahead.pending === 0);
  const release = lockDatabase(t, path);
  batch(100);
  ahead.flush(); // the thread's commit waits for the lock, so does the event loop's: the fault
  assert.deepEqual(health, [false]);
  const inFlight = ahead.pending;
  // A steady stream for many once-a-second retries (every 20 ms here): each retry used to write the
  // held rows ahead into a segment the locked database refused, until the in-flight bound made
  // every hand-over wait for the thread, and every verdict with it.
  for (let i = 0; i < 40; i++) {
    batch(128);
    await delay(5);
    assert.equal(ahead.backpressureMs, 0, `the verdict path waited for the thread (batch ${i})`);
    assert.ok(ahead.pending <= inFlight, `${ahead.pending} rows in flight, ${inFlight} when the fault began`);
    assert.equal(ahead.health.healthy, false);
  }
  assert.equal(ahead.health.heldRows, seq - 101, 'the rows answered through the fault are held');
  release();
  await until(
    'the fault to clear and every row to be committed',
    () => {
      return ahead.health.healthy && ahead.pending === 0 && ahead.health.heldRows === 0;
    },
    { state: () => `health ${JSON.stringify(ahead.health)}, ${ahead.pending} pending` },
  );
  assert.deepEqual(health, [false, true]);
  assert.equal(ahead.health.droppedRows, 0);
  assert.equal(ahead.backpressureMs, 0);
  const stored = store.db
    .prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS seqs FROM events WHERE vm = 'vm-s'")
    .get() as { n: number; seqs: number };
  assert.deepEqual(stored, { n: seq, seqs: seq }, 'every answered row stored exactly once');
});
