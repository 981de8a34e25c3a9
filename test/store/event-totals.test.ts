/**
 * `status`'s event figures, kept between reads (store/event-totals.ts): after every kind of change
 * the store sees — rows added, retention's deletes of the oldest, a row deleted out of order, a row
 * added below the highest id as a segment taken over late is, both of the last two between reads —
 * they equal the figures counted afresh over every row.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { type EventStore, Retention } from '../../store/index.js';
import { type RecordSpec, record, scratchStore, session } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 8, 0, 0);
const DAY = 86_400_000;

/** The figures counted afresh, as `status` counted them before it kept them. */
function countedAfresh(store: EventStore) {
  const db = store.db;
  const t = db
    .prepare(
      'SELECT COUNT(*) AS events, COALESCE(SUM(replay), 0) AS replays, COUNT(DISTINCT vm) AS vms, ' +
        'MIN(time_ms) AS oldestMs, MAX(time_ms) AS newestMs FROM events',
    )
    .get() as Record<string, number | null>;
  const byAction: Record<string, number> = {};
  for (const r of db
    .prepare('SELECT action, COUNT(*) AS n FROM events WHERE action IS NOT NULL GROUP BY action')
    .all() as { action: string; n: number }[])
    byAction[r.action] = r.n;
  return { ...t, byAction };
}

function figures(store: EventStore) {
  const { events, replays, vms, oldestMs, newestMs, byAction } = store.queries.totals();
  return { events, replays, vms, oldestMs, newestMs, byAction };
}

function agree(store: EventStore, after: string) {
  const kept = figures(store);
  assert.deepEqual(kept, countedAfresh(store), `after ${after}`);
  return kept;
}

let seq = 0;
function add(store: EventStore, n: number, spec: Omit<RecordSpec, 'seq' | 'timeMs'> & { at: number }) {
  store.append(
    Array.from({ length: n }, (_, i) => record({ ...spec, seq: ++seq, timeMs: T0 + spec.at + i })),
  );
}

function freshStore(t: TestContext): EventStore {
  seq = 0;
  return scratchStore(t);
}

test('status figures kept between reads equal the figures counted afresh, whatever changed', (t) => {
  const store = freshStore(t);
  const [old, a, b] = [session('vm-old', 1n), session('vm-a', 2n), session('vm-b', 3n)];
  assert.deepEqual(agree(store, 'nothing stored'), {
    events: 0,
    replays: 0,
    vms: 0,
    oldestMs: null,
    newestMs: null,
    byAction: {},
  });

  add(store, 20, { session: old, at: 0 });
  add(store, 50, { session: a, at: 1000 });
  add(store, 5, { session: a, at: 2000, action: 'kill' });
  assert.deepEqual(agree(store, 'the first rows').byAction, { inject: 70, kill: 5 });

  add(store, 30, { session: b, at: 3000 });
  add(store, 4, { session: b, at: 4000, replay: true });
  assert.equal(agree(store, 'rows added: a VM, replays').vms, 3);
  assert.equal(agree(store, 'a read with nothing new').replays, 4);

  // Retention: the oldest rows go, vm-old's all of them, as store/prune.ts deletes them.
  store.db
    .prepare('DELETE FROM event_rows WHERE id IN (SELECT id FROM event_rows ORDER BY time_ms, id LIMIT ?)')
    .run(20);
  add(store, 3, { session: a, at: 5000 });
  const pruned = agree(store, "retention deleting vm-old's rows, then rows added");
  assert.equal(pruned.vms, 2);

  // A row deleted out of order (not the lowest id), and as many added: the count alone is the same.
  const middle = store.db
    .prepare('SELECT id FROM event_rows WHERE action = ? ORDER BY id LIMIT 1')
    .pluck()
    .get('kill');
  store.db.prepare('DELETE FROM event_rows WHERE id = ?').run(middle);
  add(store, 1, { session: b, at: 6000 });
  assert.equal(agree(store, 'a kill deleted, an inject added').byAction.kill, 4);

  // A row added below the highest id read, as a segment taken over late is committed.
  store.db.exec(
    `CREATE TEMP TABLE late AS SELECT * FROM event_rows WHERE id = (SELECT MAX(id) FROM event_rows)`,
  );
  store.db.prepare('UPDATE temp.late SET id = ?, action = ?').run(middle, 'kill');
  store.db.exec('INSERT INTO event_rows SELECT * FROM temp.late; DROP TABLE temp.late');
  assert.equal(agree(store, 'a row added below the highest id').byAction.kill, 5);

  add(store, 2, { session: old, at: 7000 });
  assert.equal(agree(store, 'vm-old back').vms, 3);
});

test('retention deleting a row other than the lowest while a late row is committed: both are counted', async (t) => {
  const store = freshStore(t);
  const [a, b] = [session('vm-a', 2n), session('vm-b', 3n)];
  add(store, 10, { session: a, at: 0 });
  // A replay is stored at its own, older time: retention by age takes it, not the lowest id.
  store.append([record({ session: b, seq: ++seq, timeMs: T0 - 100 * DAY, replay: true, action: 'kill' })]);
  add(store, 2, { session: b, at: 1000, action: 'kill' });
  // The row after the replay is in a segment taken over late: not committed yet when `status` reads.
  const late = store.db.prepare('SELECT id FROM event_rows ORDER BY id LIMIT 1 OFFSET 11').pluck().get();
  store.db.exec(`CREATE TEMP TABLE late AS SELECT * FROM event_rows WHERE id = ${Number(late)}`);
  store.db.prepare('DELETE FROM event_rows WHERE id = ?').run(late);
  assert.equal(agree(store, 'the rows but the late one').replays, 1);

  const retention = new Retention(store, { now: () => T0 + DAY });
  t.after(() => retention.stop());
  assert.equal((await retention.run())?.deletedByAge, 1);
  // The late row, another VM's inject, committed: as many rows as before, the lowest id the same.
  store.db.exec("UPDATE temp.late SET vm = 'vm-c', action = 'inject'");
  store.db.exec('INSERT INTO event_rows SELECT * FROM temp.late; DROP TABLE temp.late');
  const after = agree(store, 'the replay deleted by retention, the late row committed');
  assert.deepEqual(
    [after.events, after.replays, after.vms, after.byAction],
    [12, 0, 3, { inject: 11, kill: 1 }],
  );
});
