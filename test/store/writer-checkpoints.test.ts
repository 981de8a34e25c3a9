/**
 * The writer thread checkpoints the WAL itself (store/writer-thread.ts `CHECKPOINT_ROWS`): as soon
 * as nothing is posted to it once it has committed that many rows since its last checkpoint, and
 * before it sleeps if it committed any. What shows it is the database file on its own: a copy of
 * it without its WAL holds the rows only once they are checkpointed. A commit on another
 * connection — the event loop's — leaves them to it once a thread has run, short of SQLite's bound
 * (store/connection.ts).
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import { AUTOCHECKPOINT_PAGES } from '../../store/connection.js';
import type { EventStore, WriteAhead } from '../../store/index.js';
import { sessionRow } from '../../store/updates.js';
import { CHECKPOINT_ROWS } from '../../store/writer-thread.js';
import { until } from '../helpers/wait.js';
import { countInDatabaseFile, record, session, threadedStore } from './records.js';

const T0 = Date.UTC(2026, 11, 4, 9, 0, 0);

/** Records `n` events of one VM, 500 to a batch, as the verdict path does. */
function recordEvents(ahead: WriteAhead, vm: string, n: number): void {
  const s = session(vm, 3n);
  for (let from = 1; from <= n; from += 500) {
    const seqs = Array.from({ length: Math.min(500, n - from + 1) }, (_, i) => from + i);
    ahead.record(seqs.map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  }
}

test('past CHECKPOINT_ROWS committed rows the writer thread checkpoints once nothing is posted, before it would sleep', async (t) => {
  const { path, ahead, errors } = threadedStore(t, {}, { maxPending: 2_000 });
  const rows = CHECKPOINT_ROWS + 700;
  recordEvents(ahead, 'vm-storm', rows);
  await until('every row committed', () => ahead.pending === 0, { state: () => `${ahead.pending} pending` });
  await until('the thread to checkpoint', () => ahead.writerCheckpoints >= 1);
  // Sleeping takes a second of empty polls: a checkpoint seen before it came from the row count.
  assert.equal(ahead.writerAsleep, false, 'the checkpoint came before the thread slept');
  // Asleep, it has checkpointed what came after, and nothing runs while the file is copied.
  await until('the writer thread to sleep', () => ahead.writerAsleep, { everyMs: 50 });
  assert.equal(countInDatabaseFile(t, path), rows);
  assert.deepEqual(errors, []);
});

test('fewer rows, or updates alone, are checkpointed before the thread sleeps', async (t) => {
  const { path, store, ahead, errors } = threadedStore(t);
  recordEvents(ahead, 'vm-few', 120);
  await until('every row committed', () => ahead.pending === 0);
  await until('the writer thread to sleep', () => ahead.writerAsleep, { everyMs: 50 });
  assert.equal(ahead.writerCheckpoints, 1);
  assert.equal(countInDatabaseFile(t, path), 120);
  // A session row goes to the thread as an update, with no row: it too is checkpointed.
  store.sessionOpened(session('vm-later', 9n));
  await until('the thread to checkpoint the session row', () => ahead.writerCheckpoints === 2, {
    state: () => `${ahead.writerCheckpoints} checkpoints`,
  });
  await until('the writer thread to sleep again', () => ahead.writerAsleep, { everyMs: 50 });
  assert.equal(countInDatabaseFile(t, path, 'sessions WHERE session_id = 9'), 1);
  assert.deepEqual(errors, []);
});

/**
 * Another connection leaves `pages` WAL pages, as a storm's commits do between two of the writer
 * thread's checkpoints; then the store's own connection commits one session row, as the event loop
 * does. Returns how many of those pages the database file alone holds after that commit.
 */
function checkpointedByOneCommit(t: TestContext, path: string, store: EventStore, pages: number): number {
  const other = new Database(path);
  t.after(() => other.close());
  other.exec('CREATE TABLE filler (b BLOB)');
  other.pragma('wal_checkpoint(TRUNCATE)');
  other.pragma('wal_autocheckpoint = 0');
  other.transaction(() => {
    const insert = other.prepare('INSERT INTO filler (b) VALUES (zeroblob(4000))');
    for (let i = 0; i < pages; i++) insert.run();
  })();
  assert.equal(countInDatabaseFile(t, path, 'filler'), 0, 'none checkpointed yet');
  store.updateHere(['open', ...sessionRow(session('vm-quiet', 4n))]);
  assert.equal(other.prepare('SELECT COUNT(*) FROM sessions WHERE session_id = 4').pluck().get(), 1);
  const checkpointed = countInDatabaseFile(t, path, 'filler');
  // What the writer thread's checkpoint does, seen through the same copy.
  other.pragma('wal_checkpoint(PASSIVE)');
  assert.equal(countInDatabaseFile(t, path, 'filler'), pages);
  assert.equal(countInDatabaseFile(t, path, 'sessions WHERE session_id = 4'), 1);
  return checkpointed;
}

const STORM_PAGES = 3_000; // past SQLite's default of 1,000, short of the bound
assert.ok(STORM_PAGES < AUTOCHECKPOINT_PAGES);

test("once a writer thread runs, a commit on the event loop's connection leaves the WAL's pages to the thread's checkpoint", async (t) => {
  const { path, store, ahead, errors } = threadedStore(t);
  const bound = () => store.db.pragma('wal_autocheckpoint', { simple: true });
  assert.equal(bound(), 1_000, "SQLite's default until the thread starts");
  recordEvents(ahead, 'vm-storm', 120);
  await until('every row committed', () => ahead.pending === 0);
  assert.equal(bound(), AUTOCHECKPOINT_PAGES);
  await until('the writer thread to sleep', () => ahead.writerAsleep, { everyMs: 50 });
  assert.equal(
    checkpointedByOneCommit(t, path, store, STORM_PAGES),
    0,
    "the commit copied none of the WAL's pages",
  );
  assert.deepEqual(errors, []);
});

test("a store whose writer thread never ran checkpoints at SQLite's default: a quiet daemon's WAL stays small", (t) => {
  const { path, store, ahead } = threadedStore(t);
  store.sessionOpened(session('vm-a', 2n));
  ahead.flush();
  assert.equal(ahead.writerRunning, false, 'session rows alone start no thread');
  assert.equal(checkpointedByOneCommit(t, path, store, STORM_PAGES), STORM_PAGES);
});
