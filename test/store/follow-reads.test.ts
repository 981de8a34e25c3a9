/**
 * The reads `seawall events --follow` makes: the events stored after an id, in the order they were
 * stored, and never past the lowest id not yet committed — so that a row committed after a higher
 * one (a segment committed late) is given by a later read instead of being passed over.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { EventStore, isStoreError, StoreReader, WriteAhead } from '../../store/index.js';
import { WRITER_BUSY_TIMEOUT_MS } from '../../store/writer-thread.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, scratchStore, scratchStorePath, session } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 14, 0, 0);
const HOUR = 3_600_000;

test('events after an id come in the order they were stored, filtered, at most the limit', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  store.append([record({ session: a, seq: 1, timeMs: T0 }), record({ session: b, seq: 1, timeMs: T0 + 1 })]);
  // Stored third, but two hours older: by time it would come first, by id it comes last.
  store.append([record({ session: a, seq: 2, timeMs: T0 - 2 * HOUR, replay: true })]);
  store.append([record({ session: a, seq: 3, timeMs: T0 + 2 })]);
  const q = store.queries;
  const all = q.events({ afterId: 0, limit: 10 });
  assert.deepEqual(
    all.map((e) => [e.vm, e.seq]),
    [
      ['vm-a', 1],
      ['vm-b', 1],
      ['vm-a', 2],
      ['vm-a', 3],
    ],
  );
  const ids = all.map((e) => e.id);
  assert.deepEqual(
    ids,
    [...ids].sort((x, y) => x - y),
  );
  assert.deepEqual(
    q.events({ afterId: ids[1] as number }).map((e) => e.seq),
    [2, 3],
    'only what was stored after the id',
  );
  assert.deepEqual(
    q.events({ afterId: 0, vm: 'vm-a' }).map((e) => e.seq),
    [1, 2, 3],
  );
  assert.deepEqual(
    q.events({ afterId: 0, vm: 'vm-a', sinceMs: T0 - HOUR }).map((e) => e.seq),
    [1, 3],
    '--since leaves out the old replay',
  );
  assert.deepEqual(
    q.events({ afterId: 0, limit: 2 }).map((e) => e.id),
    ids.slice(0, 2),
    'the limit keeps the first stored',
  );
  assert.deepEqual(
    q.events({ afterId: 0, belowId: ids[2] as number }).map((e) => e.id),
    ids.slice(0, 2),
    'nothing at or above belowId',
  );
  assert.throws(
    () => q.events({ afterId: 0, before: { timeMs: T0, id: 9 } }),
    (e: unknown) => isStoreError(e) && e.code === 'SEAWALL_STORE_INVALID_OPTION',
  );
  assert.equal(q.totals().lastId, ids[3]);
  assert.equal(q.totals(ids[2] as number).lastId, ids[1], 'lastId stays below belowId');
  assert.equal(q.totals(1_000_000).lastId, ids[3]);
});

test('an empty store has no last id', (t) => {
  assert.equal(scratchStore(t).queries.totals().lastId, null);
});

test('a row committed below a higher one is read after it is committed, not passed over', async (t) => {
  const path = scratchStorePath();
  const store = new EventStore({ path });
  // Nothing handed over on its own: the rows stay in the file until the test flushes them.
  const ahead = new WriteAhead(store, { flushMs: 3_600_000, thread: false });
  // Reads neither hand over nor wait (the write-ahead layer's `settle` would commit the rows).
  const reader = new StoreReader(store, {
    settle: async () => {},
    get uncommittedFrom() {
      return ahead.uncommittedFrom;
    },
  });
  t.after(() => {
    reader.close();
    ahead.close();
    store.close();
  });
  const a = session('vm-a', 1n);
  assert.equal(ahead.uncommittedFrom, null, 'nothing written ahead');
  ahead.record([1, 2, 3].map((seq) => record({ session: a, seq, timeMs: T0 + seq })));
  const [low] = (await reader.events({ afterId: 0, limit: 10 })).map((e) => e.id);
  assert.equal(low, undefined, 'the written-ahead rows are not committed yet');
  assert.equal(ahead.uncommittedFrom, 1);
  // A later row committed first, around the write-ahead file: as a segment taken over late leaves
  // the store, with rows above the ones still to come.
  store.append([record({ session: a, seq: 4, timeMs: T0 + 4 })]);
  const other = new Database(path, { readonly: true });
  assert.equal(
    other.prepare('SELECT COUNT(*) FROM event_rows').pluck().get(),
    1,
    'row 4 alone is in the store',
  );
  other.close();

  // A follower: from what the store's totals say, then each answer's last id.
  let cursor = (await reader.totals()).lastId ?? 0;
  assert.equal(cursor, 0, 'the last id stays below the rows not committed');
  const seen: number[] = [];
  const poll = async () => {
    for (const e of await reader.events({ afterId: cursor, limit: 10 })) {
      seen.push(e.seq);
      cursor = e.id;
    }
  };
  await poll();
  assert.deepEqual(seen, [], 'row 4 waits for the rows below it');
  ahead.flush();
  assert.equal(ahead.uncommittedFrom, null);
  await poll();
  assert.deepEqual(seen, [1, 2, 3, 4], 'every row, once, in the order of their ids');
});

test('rows held through a fault keep the lowest uncommitted id until committed', async (t) => {
  const path = scratchStorePath();
  const store = new EventStore({ path, onError: () => {} });
  const ahead = new WriteAhead(store, { maxPending: 2, checkMs: 20, waitMs: 60_000, onError: () => {} });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const unlock = lockDatabase(t, path);
  const a = session('vm-a', 1n);
  ahead.record([1, 2].map((seq) => record({ session: a, seq, timeMs: T0 + seq })));
  assert.equal(ahead.uncommittedFrom, 1, 'a segment handed over and not committed');
  await until('the store to be found faulty', () => !ahead.health.healthy, {
    timeoutMs: 5 * WRITER_BUSY_TIMEOUT_MS,
  });
  ahead.record([record({ session: a, seq: 3, timeMs: T0 + 3 })]);
  assert.equal(ahead.health.heldRows, 1, 'answered during the fault: held');
  assert.equal(ahead.uncommittedFrom, 1);
  unlock();
  await until('every row committed', () => ahead.health.healthy && ahead.pending === 0);
  assert.equal(ahead.uncommittedFrom, null);
  assert.equal(store.queries.totals().lastId, 3);
});
