/**
 * Event rows inserted `ROWS_PER_INSERT` to a statement (store/event-inserts.ts), on a real SQLite
 * file: the same rows as inserted alone, and each row new or stored counted once however the
 * rows of a write mix — rows stored already, a row twice, a row SQLite gives its id — and a row
 * SQLite refuses among them rolling the whole write back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROWS_PER_INSERT } from '../../store/event-inserts.js';
import { EventStore, type StoreOp } from '../../store/index.js';
import { eventWriter } from '../../store/inserts.js';
import { COL, type EventValues } from '../../store/rows.js';
import type { AppliedUpdate } from '../../store/updates.js';
import { record, scratchStorePath, session } from './records.js';

/** A fresh store, its directory removed after the file's tests. */
const open = (onError?: (op: StoreOp, err: unknown) => void): EventStore =>
  new EventStore({ path: scratchStorePath(), bootId: 'boot-1', onError });

const T0 = 1_700_000_000_000;

/** `n` rows of one VM's storm over 5 pages, with the store's next ids. */
function storm(store: EventStore, n: number): EventValues[] {
  const s = session('vm-a');
  const records = Array.from({ length: n }, (_, i) =>
    record({
      session: s,
      seq: i + 1,
      timeMs: T0 + i,
      vcpu: i % 4,
      gpa: 0x8000_0000n + BigInt(i % 5) * 0x1000n,
    }),
  );
  return store.rowsOf(records).map((r) => r.values);
}

/** Every stored row as the view shows it, and the poisoned pages. */
function contents(store: EventStore): unknown {
  return {
    rows: store.db.prepare('SELECT * FROM events ORDER BY id').all(),
    pages: store.queries.poisonedPages(),
  };
}

test('rows sharing a statement are stored as rows inserted alone are, with their APPLIED results', () => {
  const n = 2 * ROWS_PER_INSERT + 7;
  const shared = open();
  const alone = open();
  const rows = storm(shared, n);
  // Every third row's result came in the same write, some of them after the plugin's fallback.
  const result = (v: EventValues, i: number): AppliedUpdate | null =>
    i % 3 === 0
      ? [v[COL.sessionId], v[COL.ord], i % 2, T0 + 100 + i, i % 6 === 0 ? 3 : null, v[COL.id]]
      : null;
  const updates = rows.map(result).filter((u): u is AppliedUpdate => u !== null);
  assert.deepEqual(shared.appendRows(rows, updates), { inserted: n, duplicates: 0 });
  rows.forEach((v, i) => {
    const u = result(v, i);
    assert.deepEqual(alone.appendRows([v], u ? [u] : []), { inserted: 1, duplicates: 0 });
  });
  const stored = contents(shared);
  assert.deepEqual(stored, contents(alone));
  const applied = (stored as { rows: { applied: number | null; fallback_action: number | null }[] }).rows;
  assert.equal(applied.length, n);
  assert.equal(applied.filter((r) => r.applied !== null).length, updates.length);
  assert.equal(applied.filter((r) => r.fallback_action === 3).length, Math.ceil(n / 6));
  shared.close();
  alone.close();
});

test('a write mixing stored rows, a row twice and new rows counts each row once', () => {
  const store = open();
  const rows = storm(store, 3 * ROWS_PER_INSERT);
  const first = rows.slice(0, ROWS_PER_INSERT + 4);
  assert.deepEqual(store.appendRows(first), { inserted: first.length, duplicates: 0 });
  const fresh = rows.slice(first.length);
  // Stored ones before, among and after the new ones; one new row twice, apart.
  const mixed = [
    ...first.slice(0, 5),
    ...fresh.slice(0, 9),
    first[7]!,
    ...fresh.slice(9),
    fresh[3]!,
    ...first.slice(-3),
  ];
  assert.deepEqual(store.appendRows(mixed), {
    inserted: fresh.length,
    duplicates: mixed.length - fresh.length,
  });
  const pages = store.queries.poisonedPages('vm-a');
  assert.equal(
    pages.reduce((sum, p) => sum + p.count, 0),
    rows.length,
    'each row counted on its page once',
  );
  assert.equal(store.queries.totals().events, rows.length);
  store.close();
});

test('a row SQLite gives its id (written ahead before schema 9) is met by the rows after it', () => {
  // Not met at run time (a recovered store's ids go past its rows before it gives any): a row
  // after it with the same id is then taken as stored, as it would be inserted alone, rather than
  // failing the statement it shares with others.
  const store = open();
  const rows = storm(store, ROWS_PER_INSERT + 5);
  assert.deepEqual(store.appendRows(rows.slice(0, 3)), { inserted: 3, duplicates: 0 });
  // A line without an id, of another VM: SQLite gives it the next id, 4, which the next row has too.
  const old = record({ session: session('vm-old', 9n), seq: 1, timeMs: T0 - 1000 });
  const line = [...store.rowsOf([old])[0]!.values] as unknown as EventValues;
  (line as unknown[])[COL.id] = null;
  const result = store.appendRows([line, ...rows.slice(3)]);
  assert.deepEqual(result, { inserted: rows.length - 3, duplicates: 1 });
  const ids = store.db.prepare('SELECT id, vm FROM events ORDER BY id').all();
  assert.deepEqual(ids.slice(0, 5), [
    { id: 1, vm: 'vm-a' },
    { id: 2, vm: 'vm-a' },
    { id: 3, vm: 'vm-a' },
    { id: 4, vm: 'vm-old' },
    { id: 5, vm: 'vm-a' },
  ]);
  store.close();
});

test('a row refused among rows sharing a statement rolls the whole write back; the next write stores', () => {
  const errors: [StoreOp, unknown][] = [];
  const store = open((op, err) => errors.push([op, err]));
  const rows = storm(store, 2 * ROWS_PER_INSERT);
  const bad = [...rows[ROWS_PER_INSERT + 3]!] as unknown[];
  bad[COL.vm] = null; // violates vm NOT NULL
  const broken = rows.map((v, i) => (i === ROWS_PER_INSERT + 3 ? (bad as unknown as EventValues) : v));
  assert.equal(store.appendRows(broken), null);
  assert.match(String(errors[0]?.[1]), /NOT NULL/);
  assert.equal(store.queries.totals().events, 0, 'the first statement’s rows went too');
  assert.deepEqual(store.queries.poisonedPages(), []);
  assert.deepEqual(store.appendRows(rows), { inserted: rows.length, duplicates: 0 });

  // Within a transaction of several writes (the writer thread's merged segments): all of it goes.
  const write = eventWriter(store.db, 'boot-1');
  const more = storm(store, 2 * ROWS_PER_INSERT);
  const moreBad = [...more[ROWS_PER_INSERT + 1]!] as unknown[];
  moreBad[COL.vm] = null;
  const merged = store.db.transaction(() => {
    write.within(more.slice(0, 4));
    write.within(more.map((v, i) => (i === ROWS_PER_INSERT + 1 ? (moreBad as unknown as EventValues) : v)));
  });
  assert.throws(() => merged.immediate(), /NOT NULL/);
  assert.equal(store.db.inTransaction, false);
  assert.equal(store.queries.totals().events, rows.length);
  assert.deepEqual(write(more), { inserted: more.length, duplicates: 0 });
  store.close();
});
