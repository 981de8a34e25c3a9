/**
 * Event rows as stored since schema 10 (store/stored-values.ts): the 64-bit values kept as
 * integers in `event_rows` read back through the view `events` as the `hex64` text they were,
 * whichever way they reached the store — a record the writer thread reads back, or a row's text
 * values (held through a fault, JSON lines of earlier versions). Edge values: the bounds of what a
 * number holds exactly, and of a signed 64-bit integer.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { stormRow } from '../../bench/storm-rows.js';
import type { ColumnSink, RecordRow } from '../../store/event-columns.js';
import { EventStore, hex64, valuesOfParams } from '../../store/index.js';
import { StoreQueries } from '../../store/queries.js';
import { RecordEncoder, readWriteAhead } from '../../store/row-codec.js';
import type { EventValues } from '../../store/rows.js';
import { storedU64, storedU64At, U64_INDEXES } from '../../store/stored-values.js';
import { scratchStorePath } from './records.js';

const EDGES = [
  0n,
  1n,
  0x9200_0410n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 63n - 1n,
  2n ** 63n,
  0xffff_8000_1234_5000n,
  2n ** 64n - 1n,
  2n ** 64n - 2n ** 53n,
  2n ** 64n - 2n ** 53n + 2n ** 32n - 1n,
  2n ** 64n - 2n ** 53n + 2n ** 32n,
];

const BOOT = 'b0b0b0b0-0000-4000-8000-00000000000a';

/** A storm's event row (bench/storm-rows.ts) whose four 64-bit columns hold `v`, v + 1, v + 2, v + 3 (wrapped). */
function row(i: number, v: bigint): EventValues {
  const at = (k: bigint) => hex64(BigInt.asUintN(64, v + k));
  const storm = stormRow(i, BOOT, 1, 1);
  return valuesOfParams({ ...storm, esr: at(0n), gva: at(1n), gpa: at(2n), plugin_time_ns: at(3n) });
}

/** `values` as the verdict path writes a record: 64-bit columns as values, not text. */
const asRecord = (values: EventValues): RecordRow =>
  ({
    write: (out: ColumnSink) =>
      values.forEach((v, i) => {
        if (v !== null && U64_INDEXES.includes(i)) out.u64(BigInt(v));
        else if (typeof v === 'number') out.num(v);
        else out.text(v);
      }),
  }) as unknown as RecordRow;

test('a 64-bit value is stored the same from its bytes and from its value: a number only when one holds it', () => {
  for (const v of EDGES) {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64LE(v);
    const stored = storedU64At(bytes, 0);
    assert.deepEqual(storedU64(v), stored, hex64(v));
    assert.equal(BigInt(stored), BigInt.asIntN(64, v), hex64(v));
    if (typeof stored === 'number') assert.ok(Number.isSafeInteger(stored), hex64(v));
  }
  // Both kinds occur among the edges: the test covers both.
  assert.deepEqual(new Set(EDGES.map((v) => typeof storedU64(v))), new Set(['number', 'bigint']));
});

for (const via of ['a record read back', 'text values'] as const)
  test(`every 64-bit value reads back through the view as the text it was (${via})`, () => {
    const store = new EventStore({ path: scratchStorePath(), bootId: BOOT });
    const rows = EDGES.map((v, i) => row(i, v));
    let values: EventValues[] = rows;
    if (via === 'a record read back') {
      const read: EventValues[] = [];
      readWriteAhead(
        Buffer.from(new RecordEncoder().encode(rows.map(asRecord))),
        (v) => read.push(v as EventValues),
        () => {},
      );
      // As the writer thread gets them: integers, not texts.
      assert.ok(read.every((v) => U64_INDEXES.every((i) => typeof v[i] !== 'string')));
      values = read;
    }
    assert.deepEqual(store.appendRows(values), { inserted: EDGES.length, duplicates: 0 });
    const u64 = 'esr, gva, gpa, plugin_time_ns';
    const shown = store.db.prepare(`SELECT boot_id, ${u64} FROM events ORDER BY id`).raw().all();
    assert.deepEqual(
      shown,
      rows.map((v) => [BOOT, ...U64_INDEXES.map((i) => v[i])]),
    );
    const types = store.db.prepare(`SELECT DISTINCT typeof(boot), typeof(esr), typeof(gva) FROM event_rows`);
    assert.deepEqual(types.raw().all(), [['integer', 'integer', 'integer']]);
    // The pages, kept as text, are those of the rows; the listing shows the same texts.
    const pages = store.db.prepare('SELECT gpa FROM poisoned_pages ORDER BY gpa').pluck().all();
    assert.deepEqual(pages, rows.map((v) => v[16]).sort());
    const listed = new StoreQueries(store.db, (err) => assert.fail(String(err))).events({ vm: 'vm-0' });
    assert.deepEqual(
      listed.map((e) => [e.esr, e.gva, e.gpa]),
      rows.map((v) => [v[8], v[15], v[16]]),
    );
    // Stored again (a segment recovered after its commit): skipped by id, pages not counted twice.
    assert.deepEqual(store.appendRows(values), { inserted: 0, duplicates: EDGES.length });
    assert.equal(store.db.prepare('SELECT SUM(count) FROM poisoned_pages').pluck().get(), EDGES.length);
    store.close();
  });
