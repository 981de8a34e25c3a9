/**
 * Each event row's id is given as the row is built and goes with it through the write-ahead file
 * (store/rows.ts EventParams `id`): it makes a second insert of a row change nothing, and finds
 * the row an APPLIED result is for. A start that recovers rows a killed daemon wrote ahead gives
 * ids past theirs; lines written ahead by a seawall before schema 9 (rows without an id, results
 * without their row's) are recovered once each, and the index that serves them goes after.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { EventStore, isStoreError, WriteAhead } from '../../store/index.js';
import { decodeLine, encodeRow } from '../../store/row-lines.js';
import { COL, MAX_ROW_ID } from '../../store/rows.js';
import { LEGACY_KEY_INDEX } from '../../store/schema.js';
import { segmentPath } from '../../store/segments.js';
import { encodeResult } from '../../store/update-lines.js';
import { record, scratchStorePath, session } from './records.js';

const T0 = Date.UTC(2026, 11, 3, 8, 0, 0);

/** Each stored event's [id, seq, applied], in id order. */
const stored = (store: EventStore) =>
  store.db.prepare('SELECT id, seq, applied FROM events ORDER BY id').raw().all() as [
    number,
    number,
    number | null,
  ][];

test('rows written ahead keep their ids: stored once, a result lands by id, and new ids go past them', () => {
  const path = scratchStorePath();
  const killed = new EventStore({ path, bootId: 'killed' });
  const s = session('vm-i', 3n);
  const rows = killed.rowsOf([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  assert.deepEqual(
    rows.map((r) => r.values[COL.id]),
    [1, 2, 3],
  );
  // Rows 1 and 2 committed just before the kill; the segment with all three was still on disk,
  // and the one before it with seq 2's result (its commit failed, say).
  killed.appendRows(rows.slice(0, 2).map((r) => r.values));
  const pending = `${path}.pending`;
  writeFileSync(segmentPath(pending, 1), `${encodeResult('killed')([3, 2, -5, T0 + 10, null, 2])}\n`);
  writeFileSync(segmentPath(pending, 2), `${rows.map(encodeRow).join('\n')}\n`);
  killed.close();

  const store = new EventStore({ path, bootId: 'next' });
  const ahead = new WriteAhead(store, { thread: false });
  assert.equal(ahead.recovered, 3);
  assert.deepEqual(stored(store), [
    [1, 1, null],
    [2, 2, -5],
    [3, 3, null],
  ]);
  // The file held id 2 when this store opened; the segment brought 3: the next row is 4, not a
  // row that would be taken for a copy of 3 and dropped.
  ahead.record([record({ session: session('vm-j', 1n), seq: 1, timeMs: T0 + 20 })]);
  ahead.close();
  assert.deepEqual(stored(store).at(-1), [4, 1, null]);
  store.close();
});

test('lines written ahead before schema 9 are recovered once each, results find their rows, and the index for them goes', () => {
  const path = scratchStorePath();
  const old = new EventStore({ path, bootId: 'older' });
  const s = session('vm-o', 5n);
  // As a seawall before schema 9 wrote them: no id after the order.
  const lines = old
    .rowsOf([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0 + seq })))
    .map((r) => r.values.slice(0, COL.id));
  // Row 1 was committed by that seawall (SQLite gave it its id) before the kill.
  old.appendRows([[...lines[0]!, null] as never]);
  const result = JSON.stringify(['applied', 'older', 5, 2, -22, T0 + 10, 3]);
  writeFileSync(
    segmentPath(`${path}.pending`, 1),
    `${[...lines.map((v) => JSON.stringify(v)), result].join('\n')}\n`,
  );
  old.close();

  const store = new EventStore({ path, bootId: 'newer' });
  const indexes = () =>
    store.db.prepare("SELECT name FROM pragma_index_list('event_rows')").pluck().all() as string[];
  assert.ok(indexes().includes(LEGACY_KEY_INDEX));
  const ahead = new WriteAhead(store, { thread: false });
  assert.equal(ahead.recovered, 3);
  assert.deepEqual(stored(store), [
    [1, 1, null],
    [2, 2, -22],
    [3, 3, null],
  ]);
  assert.equal(store.db.prepare('SELECT fallback_action FROM events WHERE seq = 2').pluck().get(), 3);
  assert.ok(!indexes().includes(LEGACY_KEY_INDEX), 'dropped once they are in');
  ahead.close();
  store.close();
});

test('ids past what seawall gives: such a line is not read as a row, and such a store is refused at open', () => {
  const path = scratchStorePath();
  const store = new EventStore({ path, bootId: 'b' });
  const [row] = store.rowsOf([record({ session: session('vm-x', 1n), seq: 1, timeMs: T0 })]);
  const line = (id: number) => JSON.stringify([...row!.values.slice(0, COL.id), id]);
  assert.deepEqual(decodeLine(line(MAX_ROW_ID))?.[COL.id], MAX_ROW_ID);
  for (const id of [MAX_ROW_ID + 1, 0, -3, 1.5]) assert.equal(decodeLine(line(id)), null, String(id));
  store.db
    .prepare(
      'INSERT INTO event_rows (id, boot, session_id, seq, time_ms, vm, labels, kind, severity, replay, ord) ' +
        "VALUES (?, (SELECT n FROM boots WHERE boot_id = 'b'), 1, 1, 0, 'vm', '{}', 'sea', 'uer', 0, 1)",
    )
    .run(MAX_ROW_ID + 1);
  store.close();
  assert.throws(
    () => new EventStore({ path }),
    (err: unknown) =>
      isStoreError(err, 'SEAWALL_STORE_OPEN') &&
      /holds an event id \(4503599627370497\) past any seawall gives/.test(err.message),
  );
});

test('a store file made again at run time (its file lost) has no index for older lines: nothing of theirs can come', () => {
  const path = scratchStorePath();
  const store = new EventStore({ path });
  store.recovered();
  for (const f of ['', '-wal', '-shm']) rmSync(`${path}${f}`, { force: true });
  assert.ok(store.lost());
  store.reopen();
  const indexes = store.db.prepare("SELECT name FROM pragma_index_list('event_rows')").pluck().all();
  assert.ok(!indexes.includes(LEGACY_KEY_INDEX), String(indexes));
  store.close();
});
