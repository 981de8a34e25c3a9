/**
 * The write-ahead file's binary records (store/row-codec.ts): every kind of event reads back as
 * the row its JSON line held, in any mix with text lines, and a file cut anywhere reads back what
 * it holds whole.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { typeEvent } from '../../daemon/typed-event.js';
import type { EventRecord } from '../../events/index.js';
import type { EventMsg } from '../../protocol/index.js';
import { eventValues, RecordRow } from '../../store/event-columns.js';
import { MAX_DEFINED, RecordEncoder, readWriteAhead } from '../../store/row-codec.js';
import type { EventValues } from '../../store/rows.js';
import { toStored } from '../../store/stored-values.js';
import { record, session } from './records.js';

const BOOT = 'b0b0b0b0-0000-4000-8000-000000000001';
const T0 = 1_700_000_000_000;

/** A record of another message type, typed as the daemon types it. */
function retyped(base: EventRecord, msg: EventMsg): EventRecord {
  const { event, nonConforming } = typeEvent(msg, base.session, T0);
  return { ...base, msg, event, nonConforming };
}

/** Records that use every column and every encoding: each event type, NULLs, long and non-ASCII text. */
function variants(): EventRecord[] {
  const plain = session('vm-a', 7n);
  const unicode = session(`vm-ü-${'x'.repeat(80)}`, 2n ** 40n, { tenant: 'acmé', note: 'é'.repeat(70) });
  const sea = record({ session: plain, seq: 1, timeMs: T0 });
  const replay = record({ session: plain, seq: 2, timeMs: T0 + 1, replay: true, gpa: null });
  const kill = record({ session: unicode, seq: 3, timeMs: T0 + 2, action: 'kill', rule: 'ré'.repeat(40) });
  kill.kernelMismatch = ['esr', 'gpa'];
  kill.nonConforming = ['RES0 bits set'];
  kill.verdictDowngrade = { from: 'kvm', to: 'ext_dabt', reason: 'unsupported' as never, detail: 'no RAS' };
  if (kill.verdict) kill.verdict.flags = 0xffff_ffff;
  const common = { vcpu: 1, timeNs: 2n ** 63n + 5n, replay: false, fallbackAction: 0 } as const;
  const sigbus = retyped(sea, {
    type: 'sigbus',
    seq: 4,
    ...common,
    vcpu: null,
    siCode: 5,
    addrLsb: 12,
    gpa: null,
  });
  const nisv = retyped(sea, { type: 'nisv', seq: 5, ...common, esrIss: 0x1234n, faultIpa: 0x8000_0000n });
  const mmio = retyped(sea, {
    type: 'mmio',
    seq: 6,
    ...common,
    physAddr: 0x900_0000n,
    data: new Uint8Array(8),
    len: 4,
    isWrite: false,
  });
  return [sea, replay, kill, sigbus, nisv, mmio];
}

const rowsOf = (records: EventRecord[], firstId = 1): RecordRow[] =>
  records.map(
    (r, i) =>
      new RecordRow(r, BOOT, r.receivedNs + 2n ** 33n, firstId + i, {
        vm: r.event.vm.id,
        seq: r.msg.seq,
        time: r.msg.timeNs,
      }),
  );

/** A row's values as a record reads back: its 64-bit values as `event_rows` stores them. */
const asStored = (v: EventValues | undefined): unknown[] | undefined => v && toStored(v);

function read(buf: Buffer): { records: (unknown[] | null)[]; lines: string[]; cutAt: number } {
  const records: (unknown[] | null)[] = [];
  const lines: string[] = [];
  const cutAt = readWriteAhead(
    buf,
    (v) => records.push(v),
    (l) => lines.push(l),
  );
  return { records, lines, cutAt };
}

test('every kind of event reads back as the row eventValues builds, strings defined once a file', () => {
  const [one, two] = [variants(), variants()];
  const enc = new RecordEncoder();
  // Twice in one file: the second time, the repeated strings are references.
  const first = Buffer.from(enc.encode(rowsOf(one)));
  const second = Buffer.from(enc.encode(rowsOf(two, 100)));
  assert.ok(second.length < first.length, 'the file’s strings are not written again');
  const { records, lines } = read(Buffer.concat([first, second]));
  assert.deepEqual(lines, []);
  const stored = (r: EventRecord) => r.receivedNs + 2n ** 33n;
  const expected = [
    ...one.map((r, i) => eventValues(r, BOOT, stored(r), 1 + i)),
    ...two.map((r, i) => eventValues(r, BOOT, stored(r), 100 + i)),
  ];
  assert.deepEqual(records, expected.map(asStored));
  // The lazy row is the same row.
  assert.deepEqual(rowsOf(one)[2]?.values, expected[2]);
  // What the test covers: every event type, a latency past 2^31 ns, flags past i32, NULLs.
  const kinds = new Set(expected.map((v) => v[7]));
  assert.deepEqual([...kinds].sort(), ['mmio', 'nisv', 'sea', 'sigbus']);
  assert.ok(expected.some((v) => (v[25] as number) > 2 ** 31));
  assert.ok(expected.some((v) => v[24] === 0xffff_ffff));
});

test('a row whose values were built (held through a fault) writes the same record from them', () => {
  const rows = rowsOf(variants());
  const values = rows.map((r) => r.values);
  const { records } = read(Buffer.from(new RecordEncoder().encode(rows)));
  assert.deepEqual(records, values.map(asStored));
});

test('records and text lines in any mix come back in the file’s order', () => {
  const enc = new RecordEncoder();
  const [a, b] = rowsOf(variants());
  const buf = Buffer.concat([
    Buffer.from('["legacy json row"]\n'),
    Buffer.from(enc.encode([a as RecordRow], ['["applied",1]', '["session","é"]'])),
    Buffer.from(enc.encode([b as RecordRow])),
    Buffer.from('["after"]\n'),
  ]);
  const order: string[] = [];
  readWriteAhead(
    buf,
    (v) => order.push(`record ${v?.[2]}`),
    (l) => order.push(l),
  );
  assert.deepEqual(order, [
    '["legacy json row"]',
    'record 1',
    '["applied",1]',
    '["session","é"]',
    'record 2',
    '["after"]',
  ]);
});

test('a file cut anywhere reads back the records and lines it holds whole, and nothing else', () => {
  const enc = new RecordEncoder();
  const rows = rowsOf(variants());
  // One write per row: the same bytes as one write of them all, with each record's end known.
  const pieces = [...rows.map((r) => Buffer.from(enc.encode([r]))), Buffer.from('["applied",9]\n')];
  const ends = pieces.map((_, i) => Buffer.concat(pieces.slice(0, i + 1)).length);
  const buf = Buffer.concat(pieces);
  const whole = read(buf);
  assert.equal(whole.records.length, rows.length);
  assert.deepEqual(whole.lines, ['["applied",9]']);
  assert.equal(whole.cutAt, -1);
  for (let cut = 0; cut < buf.length; cut++) {
    const { records, lines, cutAt } = read(buf.subarray(0, cut));
    assert.equal(cutAt, -1, `a file cut at ${cut} is torn, not damaged`);
    const holds = ends.filter((end) => end <= cut).length;
    assert.deepEqual(records, whole.records.slice(0, Math.min(holds, rows.length)), `cut at ${cut}`);
    // A torn text line is read as what it is, and its row decoder finds it torn (store/segments.ts).
    assert.ok(
      lines.every((l) => '["applied",9]'.startsWith(l)),
      `cut at ${cut}`,
    );
  }
});

test('a record whose length ends inside the file short of its newline: damaged from there on', () => {
  const enc = new RecordEncoder();
  const rows = rowsOf(variants());
  const pieces = rows.map((r) => Buffer.from(enc.encode([r])));
  const at = pieces[0]?.length ?? 0;
  const buf = Buffer.concat(pieces);
  for (const length of [0, 1, (pieces[1]?.length ?? 0) - 7]) {
    const damaged = Buffer.from(buf);
    damaged.writeUInt32LE(length, at + 1); // the second record's length
    const { records, cutAt } = read(damaged);
    assert.equal(cutAt, at, `length ${length}`);
    assert.deepEqual(records, [asStored(rows[0]?.values)], 'the record before it is read, none after');
  }
});

test('a length past the end of the file: torn only where the record’s columns run out with the file', () => {
  const enc = new RecordEncoder();
  const rows = rowsOf(variants());
  const pieces = rows.map((r) => Buffer.from(enc.encode([r])));
  const at = pieces[0]?.length ?? 0;
  const second = at + (pieces[1]?.length ?? 0);
  const buf = Buffer.concat(pieces);
  // One byte of the second record's length damaged (its top byte): ~2 GB, past the end of the file,
  // with every later record after it. Its columns end inside the file: damaged, not torn, and told.
  const damaged = Buffer.from(buf);
  damaged[at + 4] = 0x7f;
  const { records, cutAt } = read(damaged);
  assert.equal(cutAt, at);
  assert.deepEqual(records, [asStored(rows[0]?.values)]);
  // The same damage in a file cut inside that record (the newline and more missing) is what a
  // cut-off write leaves.
  for (const cut of [at + 5, at + 9, second - 1]) {
    const torn = read(damaged.subarray(0, cut));
    assert.equal(torn.cutAt, -1, `cut at ${cut}`);
    assert.deepEqual(torn.records, [asStored(rows[0]?.values)]);
  }
  // A tag no seawall writes, in a record that runs past the end of the file: damaged as well.
  const badTag = Buffer.from(damaged.subarray(0, second - 1));
  badTag[at + 5] = 0x7e;
  assert.equal(read(badTag).cutAt, at);
});

test('after a reset (a write cut off), the encoder defines its strings again and the file reads true', () => {
  const enc = new RecordEncoder();
  const rows = rowsOf(variants());
  const kept = Buffer.from(enc.encode(rows.slice(0, 2)));
  enc.encode(rows.slice(2, 4)); // never reached the file
  enc.reset();
  const next = Buffer.from(enc.encode(rows.slice(2)));
  const { records } = read(Buffer.concat([kept, next]));
  assert.deepEqual(
    records,
    rows.map((r) => asStored(r.values)),
  );
});

test('past MAX_DEFINED distinct strings in a file, strings are written in full', () => {
  const enc = new RecordEncoder();
  const base = variants()[0] as EventRecord;
  const many = Array.from({ length: MAX_DEFINED + 10 }, (_, i) => ({
    ...base,
    decision: base.decision && { ...base.decision, rule: `rule-${i}` },
  })) as EventRecord[];
  const rows = rowsOf(many);
  const { records } = read(Buffer.from(enc.encode(rows)));
  assert.equal(records.length, rows.length);
  assert.deepEqual(records.at(-1), asStored(rows.at(-1)?.values));
  assert.deepEqual(records[0], asStored(rows[0]?.values));
});

test('a record that is not well formed is skipped, and the next one still found', () => {
  const enc = new RecordEncoder();
  const [a, b] = rowsOf(variants());
  const one = Buffer.from(enc.encode([a as RecordRow]));
  enc.reset();
  const two = Buffer.from(enc.encode([b as RecordRow]));
  const bad = Buffer.from(one);
  bad[5] = 0x7f; // the first column's tag
  // A record of the same file whose strings were defined by a write this file lacks.
  const other = new RecordEncoder();
  other.encode([a as RecordRow]);
  const refToNothing = Buffer.from(other.encode([a as RecordRow]));
  const { records } = read(Buffer.concat([bad, refToNothing, two]));
  assert.deepEqual(records, [null, null, asStored(b?.values)]);
});

test('a record referring to a string never defined still defines its own for the records after it', () => {
  const enc = new RecordEncoder();
  const plain = session('vm-a', 7n);
  const other = session('vm-b', 8n);
  const rows = rowsOf([
    record({ session: plain, seq: 1, timeMs: T0 }),
    record({ session: other, seq: 2, timeMs: T0 }),
    record({ session: other, seq: 3, timeMs: T0 }),
  ]);
  const pieces = rows.map((r) => Buffer.from(enc.encode([r])));
  const second = pieces[1] as Buffer;
  // Its first column refers to the boot id (defined by the first record); its VM, labels and the
  // rest of what the first record did not have are defined after it, for the third record.
  assert.equal(second[5], 3, 'the boot id is a reference');
  assert.equal(second.readUInt16LE(6), 0, 'the first string the file defined');
  second[7] = 0xff; // one damaged byte: 0xff00, a number no definition has
  const { records } = read(Buffer.concat(pieces));
  assert.deepEqual(records, [asStored(rows[0]?.values), null, asStored(rows[2]?.values)]);
});

test('a batch past a megabyte is encoded whole, and its buffer is not kept for the next', () => {
  const enc = new RecordEncoder();
  const base = variants()[0] as EventRecord;
  const rows = rowsOf(Array.from({ length: 20_000 }, () => base));
  const large = Buffer.from(enc.encode(rows));
  assert.ok(large.length > 1024 * 1024, `${large.length} bytes`);
  const small = enc.encode(rows.slice(0, 2));
  assert.ok(small.buffer.byteLength <= 1024 * 1024, `${small.buffer.byteLength} bytes kept`);
  const { records } = read(Buffer.concat([large, Buffer.from(small)]));
  assert.equal(records.length, 20_002);
  assert.deepEqual(records.at(-1), asStored(rows[1]?.values));
});
