/**
 * The write-ahead files' binary records: every row reads back exactly as it was built, a string a
 * file repeats is written once, and a file a kill cut short, a damaged record or bytes that never
 * reached the file cost only the rows they held.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore } from '../../store/index.js';
import { decodeRecords, MAX_DEFINED, RECORD_MARK, RowEncoder } from '../../store/row-codec.js';
import { EVENT_COLUMNS } from '../../store/rows.js';
import { record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 2, 17, 0, 0);
const { dir, path } = tempStorePath();
const store = new EventStore({ path });
after(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Rows as the verdict path builds them: two VMs, replays, unknown GPAs, labels in any script. */
function sampleRows() {
  const a = session('vm-a', 1n, { tenant: 'acme', zone: 'eu-1' });
  const b = session('vm-ü', 2n, { tenant: 'Ωmega', note: '“quoted” \\ back\nslash' });
  const long = session('vm-long', 3n, { blob: 'x'.repeat(5000) });
  return store.rowsOf([
    record({ session: a, seq: 1, timeMs: T0 }),
    record({ session: a, seq: 2, timeMs: T0 + 1, gpa: null, vcpu: 7 }),
    record({ session: b, seq: 1, timeMs: T0 + 2, action: 'kill', rule: 'kill-räume' }),
    record({ session: a, seq: 3, timeMs: T0 + 3, replay: true }),
    record({ session: long, seq: 1, timeMs: T0 + 4, esr: 0x9200_0410n }),
    record({ session: b, seq: 2, timeMs: T0 + 5, gpa: 0xffff_ffff_f000n }),
  ]);
}

test('every row reads back exactly as built, in fewer bytes than its JSON', () => {
  const rows = sampleRows();
  const bytes = Buffer.from(new RowEncoder().encode(rows));
  assert.equal(bytes[0], RECORD_MARK);
  assert.deepEqual(
    decodeRecords(bytes),
    rows.map((r) => r.values),
  );
  const json = Buffer.byteLength(rows.map((r) => JSON.stringify(r.values)).join('\n'));
  assert.ok(bytes.length < json, `${bytes.length} bytes, JSON ${json}`);
});

test('a string the file repeats is written once: the boot id, the VM, its labels', () => {
  const s = session('vm-repeat', 9n, { tenant: 'repeated-tenant' });
  const rows = store.rowsOf(
    Array.from({ length: 50 }, (_, i) => record({ session: s, seq: i + 1, timeMs: T0 })),
  );
  const enc = new RowEncoder();
  // Across calls too: one file is appended batch by batch.
  const bytes = Buffer.concat([
    Buffer.from(enc.encode(rows.slice(0, 20))),
    Buffer.from(enc.encode(rows.slice(20))),
  ]);
  const count = (s: string) => bytes.toString('latin1').split(s).length - 1;
  assert.equal(count(store.bootId), 1);
  assert.equal(count('vm-repeat'), 1);
  assert.equal(count('repeated-tenant'), 1);
  assert.deepEqual(
    decodeRecords(bytes),
    rows.map((r) => r.values),
  );
  // After a reset (a new file), the strings are written again: each file reads on its own.
  enc.reset();
  const next = Buffer.from(enc.encode(rows.slice(0, 1)));
  assert.ok(next.toString('latin1').includes(store.bootId));
  assert.deepEqual(decodeRecords(next), [rows[0]?.values]);
});

test('past MAX_DEFINED distinct strings, the rest are written in full and still read back', () => {
  const values = (i: number) => EVENT_COLUMNS.map((c) => (c === 'vm' ? `vm-${i}` : c === 'seq' ? i : null));
  const rows = Array.from({ length: MAX_DEFINED + 500 }, (_, i) => ({ values: values(i) }));
  const decoded = decodeRecords(Buffer.from(new RowEncoder().encode(rows)));
  assert.equal(decoded.length, rows.length);
  assert.deepEqual(decoded.at(-1), values(MAX_DEFINED + 499));
  assert.deepEqual(decoded[MAX_DEFINED - 1], values(MAX_DEFINED - 1));
});

test('bytes that never reached the file: after reset, what follows reads back whole', () => {
  const rows = sampleRows();
  const enc = new RowEncoder();
  const first = Buffer.from(enc.encode(rows.slice(0, 2)));
  enc.encode(rows.slice(2, 4)); // defines vm-ü and its labels, but is cut off: never in the file
  enc.reset();
  const last = Buffer.from(enc.encode(rows.slice(4)));
  assert.deepEqual(
    decodeRecords(Buffer.concat([first, last])),
    [...rows.slice(0, 2), ...rows.slice(4)].map((r) => r.values),
  );
  // Without the reset, the later rows would refer to strings the file does not hold: they read as
  // damaged, never as another row's values.
  const stale = new RowEncoder();
  const a = Buffer.from(stale.encode(rows.slice(0, 2)));
  stale.encode(rows.slice(2, 4));
  const b = Buffer.from(stale.encode(rows.slice(5)));
  assert.deepEqual(decodeRecords(Buffer.concat([a, b])), [rows[0]?.values, rows[1]?.values, null]);
});

test('a file cut anywhere in its last record loses that record only', () => {
  const rows = sampleRows();
  const whole = Buffer.from(new RowEncoder().encode(rows));
  const lastStart = Buffer.from(new RowEncoder().encode(rows.slice(0, -1))).length;
  const before = rows.slice(0, -1).map((r) => r.values);
  for (let cut = lastStart; cut < whole.length; cut++)
    assert.deepEqual(decodeRecords(whole.subarray(0, cut)), before, `cut at ${cut}`);
});

test('a damaged record reads as null and the next one is still read; a stray byte ends the file', () => {
  const rows = sampleRows().slice(0, 3);
  // Each encoded on its own, so each begins by defining its boot id: tag, number (u16), length (u32).
  const [one, two, three] = rows.map((r) => Buffer.from(new RowEncoder().encode([r]))) as [
    Buffer,
    Buffer,
    Buffer,
  ];
  const expected = rows.map((r) => r.values);
  for (const [what, damage] of [
    ['an unknown tag', (b: Buffer) => b.fill(0x7f, 5, 6)],
    ['a string longer than its record', (b: Buffer) => b.writeUInt32LE(b.length, 8)],
    ['a reference to a string never defined', (b: Buffer) => b.set([3, 0xff, 0x0f], 5)],
  ] as const) {
    const bad = Buffer.from(two);
    damage(bad);
    assert.deepEqual(decodeRecords(Buffer.concat([one, bad, three])), [expected[0], null, expected[2]], what);
  }
  // A record of 31 values, or 29: damaged.
  const short = Buffer.from(new RowEncoder().encode([{ values: EVENT_COLUMNS.slice(1).map(() => null) }]));
  const longer = Buffer.from(new RowEncoder().encode([{ values: [...EVENT_COLUMNS, 'x'].map(() => null) }]));
  assert.deepEqual(decodeRecords(Buffer.concat([short, longer])), [null, null]);
  // Anything not a record (a JSON line appended by hand) ends the reading where it starts.
  assert.deepEqual(decodeRecords(Buffer.concat([one, Buffer.from('["x"]\n'), two])), [expected[0]]);
});
