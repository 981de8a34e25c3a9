/**
 * The read `seawall events --follow` makes (store/follow-query.ts): the events stored after an id,
 * in the order stored, with how far the answer reached; never past the lowest id not yet
 * committed, so that a row committed after a higher one is given by a later answer instead of
 * being passed over; a bounded range of ids per answer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { FOLLOW_SCAN_IDS } from '../../store/follow-query.js';
import { HeldRows, PendingKeys } from '../../store/held-rows.js';
import { EventStore, type FollowAnswer, StoreReader, WriteAhead } from '../../store/index.js';
import { WRITER_BUSY_TIMEOUT_MS } from '../../store/writer-thread.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, scratchStore, scratchStorePath, session } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 14, 0, 0);
const HOUR = 3_600_000;

test('events after an id come in the order stored, filtered, with how far the answer reached', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  const q = store.queries;
  const start = q.follow({});
  assert.deepEqual([start.events, start.through, start.more], [[], 0, false], 'an empty store: from 0');
  store.append([record({ session: a, seq: 1, timeMs: T0 }), record({ session: b, seq: 1, timeMs: T0 + 1 })]);
  // Stored third, but two hours older: by time it would come first, by id it comes last.
  store.append([record({ session: a, seq: 2, timeMs: T0 - 2 * HOUR, replay: true })]);
  store.append([record({ session: a, seq: 3, timeMs: T0 + 2 })]);
  const all = q.follow({ afterId: 0 });
  assert.deepEqual(
    all.events.map((e) => [e.vm, e.seq]),
    [
      ['vm-a', 1],
      ['vm-b', 1],
      ['vm-a', 2],
      ['vm-a', 3],
    ],
  );
  const ids = all.events.map((e) => e.id);
  assert.deepEqual([all.through, all.more], [ids[3], false]);
  assert.equal(q.follow({}).through, ids[3], 'following starts at the last id stored');
  assert.ok(all.storeCreatedMs > 0 && q.follow({}).storeCreatedMs === all.storeCreatedMs);
  assert.deepEqual(
    q.follow({ afterId: ids[1] as number }).events.map((e) => e.seq),
    [2, 3],
    'only what was stored after the id',
  );
  const vmB = q.follow({ afterId: 0, vm: 'vm-b' });
  assert.deepEqual(
    vmB.events.map((e) => e.seq),
    [1],
  );
  assert.equal(vmB.through, ids[3], 'the answer reached the last id though the VM matched only one');
  assert.deepEqual(
    q.follow({ afterId: 0, vm: 'vm-a', sinceMs: T0 - HOUR }).events.map((e) => e.seq),
    [1, 3],
    '--since leaves out the old replay',
  );
  const two = q.follow({ afterId: 0, limit: 2 });
  assert.deepEqual([two.events.map((e) => e.id), two.through, two.more], [ids.slice(0, 2), ids[1], true]);
  const below = q.follow({ afterId: 0, belowId: ids[2] as number });
  assert.deepEqual(
    [below.events.map((e) => e.id), below.through],
    [ids.slice(0, 2), ids[1]],
    'stops below belowId',
  );
  assert.equal(q.follow({ belowId: ids[2] as number }).through, ids[1]);
  assert.deepEqual(q.follow({ afterId: ids[3] as number }).events, []);
  // Past the highest id stored, the id followed was another store's (one restored from a copy).
  const past = q.follow({ afterId: (ids[3] as number) + 5 });
  assert.deepEqual([past.events, past.through, past.more], [[], 0, true]);
});

test('an answer reads a bounded range of ids, and says there is more', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a', 1n);
  const n = FOLLOW_SCAN_IDS + 50;
  for (let at = 0; at < n; at += 5000) {
    const batch = [];
    for (let seq = at; seq < Math.min(n, at + 5000); seq++)
      batch.push(record({ session: a, seq, timeMs: T0 }));
    store.append(batch);
  }
  // A VM with no events: without the bound, one answer would read every row.
  const first = store.queries.follow({ afterId: 0, vm: 'vm-none' });
  assert.deepEqual([first.events, first.through, first.more], [[], FOLLOW_SCAN_IDS, true]);
  const next = store.queries.follow({ afterId: first.through, vm: 'vm-none' });
  assert.deepEqual([next.through, next.more], [n, false]);
});

test('a row committed below a higher one is given once committed, not passed over', async (t) => {
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
  assert.equal(ahead.uncommittedFrom, 1);
  // A later row committed first, around the write-ahead file: as a segment committed late leaves
  // the store, with rows above the ones still to come.
  store.append([record({ session: a, seq: 4, timeMs: T0 + 4 })]);
  const other = new Database(path, { readonly: true });
  assert.equal(
    other.prepare('SELECT COUNT(*) FROM event_rows').pluck().get(),
    1,
    'row 4 alone is in the store',
  );
  other.close();

  const read = async (afterId?: number) =>
    JSON.parse(
      Buffer.from((await reader.followEncoded(afterId === undefined ? {} : { afterId })).bytes).toString(),
    ) as FollowAnswer;
  // A follower: where following starts, then each answer's `through`.
  let cursor = (await read()).through;
  assert.equal(cursor, 0, 'the start stays below the rows not committed');
  const seen: number[] = [];
  const poll = async () => {
    const answer = await read(cursor);
    for (const e of answer.events) seen.push(e.seq);
    cursor = answer.through;
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
  assert.equal(store.queries.follow({}).through, 3);
});

test('held rows know their lowest id, out of order and past drops', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a', 1n);
  const made = store.rowsOf([1, 2, 3].map((seq) => record({ session: a, seq, timeMs: T0 + seq })));
  const [one, two, three] = made.map((r) => r.id);
  const held = new HeldRows(3, new PendingKeys(), () => {});
  assert.equal(held.lowestId(), Number.POSITIVE_INFINITY);
  held.hold(made.slice(2));
  held.hold(made.slice(0, 2)); // a lost file's rows, older, held after
  assert.equal(held.lowestId(), one);
  held.hold(made.slice(2)); // past the bound of 3: the oldest held (the first id 3) goes
  assert.equal(held.lowestId(), one);
  held.hold(made.slice(1, 3)); // now ids 1 and 2 go too
  assert.equal(held.lowestId(), two);
  const last = made[2] as (typeof made)[number];
  held.hold([last, last]); // the id 2 goes
  assert.equal(held.lowestId(), three, 'counted again once the lowest went');
  held.clear();
  assert.equal(held.lowestId(), Number.POSITIVE_INFINITY);
});

for (const vms of [1, 5])
  test(`held rows keep their lowest id as rows come and go, as a scan of them would find it (${vms} VMs)`, (t) => {
    const store = scratchStore(t);
    const sessions = Array.from({ length: vms }, (_, i) => session(`vm-${i}`, BigInt(i + 1)));
    // Ids rise in the order made; the VMs' rows made in turn, so each VM's ids are spread out.
    const made = store.rowsOf(
      Array.from({ length: 500 }, (_, i) =>
        record({ session: sessions[i % vms] as (typeof sessions)[number], seq: i + 1, timeMs: T0 + i }),
      ),
    );
    const byVm = sessions.map((_, i) => made.filter((r) => r.key.vm === `vm-${i}`));
    const held = new HeldRows(64, new PendingKeys(), () => {});
    // Batches in any order and of any VM, as a lost file's older rows are held after newer ones;
    // past 64 the oldest of the VMs holding the most go.
    let seed = 7;
    const next = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed;
    };
    for (let round = 0; round < 400; round++) {
      const rows = byVm[next() % vms] as typeof made;
      const from = next() % (rows.length - 20);
      held.hold(rows.slice(from, from + 1 + (next() % 20)));
      const scan = Math.min(...held.peek().map((r) => (r as (typeof made)[number]).id));
      assert.equal(held.lowestId(), scan, `round ${round}`);
    }
  });
