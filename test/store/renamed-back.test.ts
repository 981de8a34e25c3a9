/**
 * A write-ahead file set aside at start for records this seawall cannot read (a newer seawall's),
 * renamed back by the operator after a later boot has given the same event ids again: its rows are
 * stored, none dropped as if stored already and none twice, and its APPLIED results land on its own
 * rows, not on the later boot's rows under the same ids.
 */
import assert from 'node:assert/strict';
import { readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { RecordEncoder } from '../../store/row-codec.js';
import { COL } from '../../store/rows.js';
import { segmentPath } from '../../store/segments.js';
import { encodeResult } from '../../store/update-lines.js';
import type { AppliedUpdate } from '../../store/updates.js';
import { record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 6, 2, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Stored {
  boot_id: string;
  seq: number;
  id: number;
  applied: number | null;
}

test('a set-aside file renamed back after its ids were given again: every row stored once, results on their own rows', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const pending = `${path}.pending`;
  // A newer seawall's boot wrote six rows (ids 1–6) and the results of rows 2 and 5 ahead, and was
  // killed before any were committed.
  const newer = new EventStore({ path, bootId: 'newer' });
  const s = session('vm-n', 5n);
  const rows = newer.rowsOf(
    Array.from({ length: 6 }, (_, i) => record({ session: s, seq: i + 1, timeMs: T0 + i })),
  );
  newer.close();
  assert.deepEqual(
    rows.map((r) => r.values[COL.id]),
    [1, 2, 3, 4, 5, 6],
  );
  const enc = new RecordEncoder();
  const pieces = rows.map((r) => Buffer.from(enc.encode([r])));
  const result = (i: number, applied: number): string => {
    const v = (rows[i] as (typeof rows)[number]).values;
    const u: AppliedUpdate = [v[COL.sessionId], v[COL.ord], applied, T0 + 100, null, v[COL.id]];
    return `${encodeResult('newer')(u)}\n`;
  };
  const whole = Buffer.concat([...pieces, Buffer.from(result(1, -5) + result(4, -14))]);
  // What this seawall reads of it: the last two records have a column tag it does not know.
  const forged = Buffer.from(whole);
  let at = 0;
  for (const [i, piece] of pieces.entries()) {
    if (i >= 4) forged[at + 5] = 0x7f;
    at += piece.length;
  }
  writeFileSync(segmentPath(pending, 1), forged);

  // This seawall starts: rows 1–4 stored, the file set aside; it stores two events of its own.
  const errors: Error[] = [];
  const onError = (_op: unknown, err: unknown) => errors.push(err as Error);
  const older = new EventStore({ path, bootId: 'older', onError });
  new WriteAhead(older, { thread: false, onError }).close();
  assert.equal(errors.length, 1);
  assert.match(errors[0]?.message ?? '', /2 of its records are not rows this seawall can read/);
  const own = session('vm-o', 7n);
  older.append([
    record({ session: own, seq: 1, timeMs: T0 + 10 }),
    record({ session: own, seq: 2, timeMs: T0 + 11 }),
  ]);
  const ownIds = older.db.prepare("SELECT id FROM events WHERE boot_id = 'older' ORDER BY id").pluck().all();
  assert.deepEqual(ownIds, [5, 6], 'the ids of the rows not read, given again');
  older.close();

  // The operator renames the file back, for a seawall that reads it (the newer one, started again).
  const aside = readdirSync(dir).filter((n) => n.includes('.set-aside-'));
  assert.equal(aside.length, 1);
  renameSync(join(dir, aside[0] as string), segmentPath(pending, 9));
  writeFileSync(segmentPath(pending, 9), whole);
  // And a copy of it beside it (as the copy of held rows may repeat a segment's).
  writeFileSync(segmentPath(pending, 10), whole);
  errors.length = 0;
  const again = new EventStore({ path, bootId: 'newer-again', onError });
  new WriteAhead(again, { thread: false, onError }).close();
  assert.deepEqual(errors, []);
  const query = 'SELECT boot_id, seq, id, applied FROM events ORDER BY boot_id, seq';
  const stored = again.db.prepare(query).all() as Stored[];
  again.close();
  // Renamed back once more, at a later start: stored already, under the new ids.
  writeFileSync(segmentPath(pending, 11), whole);
  const last = new EventStore({ path, bootId: 'last', onError });
  new WriteAhead(last, { thread: false, onError }).close();
  assert.deepEqual(last.db.prepare(query).all(), stored, 'nothing stored twice');
  last.close();
  assert.deepEqual(errors, []);
  const of = (boot: string) => stored.filter((r) => r.boot_id === boot);
  assert.deepEqual(
    of('older').map((r) => [r.seq, r.id, r.applied]),
    [
      [1, 5, null],
      [2, 6, null],
    ],
    'this seawall’s rows keep their ids, and no other row’s result',
  );
  const newerRows = of('newer');
  assert.deepEqual(
    newerRows.map((r) => r.seq),
    [1, 2, 3, 4, 5, 6],
    'every row of the file, once',
  );
  assert.deepEqual(
    newerRows.map((r) => r.applied),
    [null, -5, null, null, -14, null],
    'each result on its own row',
  );
  const ids = stored.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(
    newerRows.slice(0, 4).map((r) => r.id),
    [1, 2, 3, 4],
  );
  assert.ok(
    newerRows.slice(4).every((r) => r.id > 6),
    'the rows whose ids were given again, under new ones',
  );
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('events.sqlite.pending.')).length, 0);
});
