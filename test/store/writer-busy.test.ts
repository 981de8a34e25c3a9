/**
 * A lock another connection holds (store/writer-thread.ts `commitParts`): the writer thread's merged
 * transaction fails with SQLITE_BUSY after its busy timeout, and every segment in it fails with it —
 * not each again on its own, which waited the timeout out once per segment (ten segments: ~23 s)
 * before the first failure reached the event loop and the store was found faulty. Released, the
 * lock lets the fault's retry commit every row once.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { WRITER_BUSY_TIMEOUT_MS } from '../../store/writer-thread.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('segments queued behind a lock fail together after one busy timeout, then commit once', async (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, onError: () => {} });
  const ahead = new WriteAhead(store, {
    flushMs: 3_600_000,
    maxPending: 5,
    waitMs: 60_000,
    onError: () => {},
  });
  const unlock = lockDatabase(t, path);
  const s = session('vm-a', 1n);
  // Ten segments of five rows: the first alone (the thread starts on it), the rest queued behind.
  for (let seq = 1; seq <= 50; seq += 5)
    ahead.record([0, 1, 2, 3, 4].map((k) => record({ session: s, seq: seq + k, timeMs: T0 + seq + k })));
  // Two busy timeouts — the first segment's and the merged rest's — and room for a loaded
  // machine; one per segment would be eleven.
  await until('the store to be found faulty', () => !ahead.health.healthy, {
    timeoutMs: 5 * WRITER_BUSY_TIMEOUT_MS,
  });
  unlock();
  await until('the retry to commit every row', () => ahead.health.healthy && ahead.pending === 0);
  assert.equal(store.queries.totals().events, 50);
  ahead.close();
  store.close();
});
