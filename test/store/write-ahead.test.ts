/**
 * The write-ahead layer with its writer thread: rows reach SQLite off the event loop, reads see
 * everything recorded so far, APPLIED results find rows still queued, replays are recognised while
 * their original is only in the same batch, the file or a segment, segments a killed daemon left
 * are recovered at open, and the rows of a file removed with its directory are stored all the same.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import type { SessionInfo } from '../../events/index.js';
import { EventStore, WriteAhead, type WriteAheadOptions } from '../../store/index.js';
import { decodeLine, encodeRow } from '../../store/row-lines.js';
import { COL } from '../../store/rows.js';
import { segmentPath } from '../../store/segments.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(): { dir: string; path: string; store: EventStore; errors: unknown[] } {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const errors: unknown[] = [];
  const store = new EventStore({ path, onError: (_op, err) => errors.push(err) });
  return { dir, path, store, errors };
}

const segmentsIn = (dir: string) => readdirSync(dir).filter((n) => /\.pending\.\d+$/.test(n));

/** Records one row of `s`, which starts the writer thread, and waits until the thread has committed it. */
async function startWriter(ahead: WriteAhead, s: SessionInfo): Promise<void> {
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  void ahead.settle(); // hands it over now, whatever flushMs is
  await until('the writer thread to commit its first row', () => ahead.pending === 0 && ahead.writerRunning);
}

test('the writer thread commits handed-over segments and deletes them; reads see every row', async () => {
  const { dir, path, store, errors } = open();
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err) });
  const s = session('vm-a', 3n);
  for (let seq = 1; seq <= 50; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  store.markApplied(3n, 7, -5);
  assert.equal(ahead.pending, 50);
  // Nothing on this thread reads or flushes, so only the writer thread can move the rows: its
  // acknowledgement, after the hand-over tick, is what empties `pending`.
  await until('the writer thread to acknowledge the handed-over segment', () => ahead.pending === 0, {
    state: () => `${ahead.pending} rows pending, segments ${segmentsIn(dir).join(', ') || 'none'}`,
  });
  // By then the rows are committed — seen on a connection of the test's own — and the segment
  // is gone: the thread unlinks it before acknowledging.
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.prepare('SELECT COUNT(*) FROM events').pluck().get(), 50, 'rows committed by the thread');
    assert.equal(db.prepare('SELECT applied FROM events WHERE seq = 7').pluck().get(), -5);
  } finally {
    db.close();
  }
  assert.deepEqual(segmentsIn(dir), []);
  assert.equal(store.queries.totals().events, 50);
  assert.equal(ahead.backpressureMs, 0, 'the bound was never reached');
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('a writer thread asleep after a quiet second is woken by the next segment posted', async () => {
  const { store, errors } = open();
  const ahead = new WriteAhead(store, { flushMs: 5, onError: (_op, err) => errors.push(err) });
  const s = session('vm-w', 4n);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  // Only the thread's acknowledgement empties `pending`: nothing here reads, which would wake it.
  await until('the first segment to be committed', () => ahead.pending === 0);
  await until('the writer thread to sleep', () => ahead.writerAsleep, { everyMs: 50 });
  ahead.record([record({ session: s, seq: 2, timeMs: T0 + 2 })]);
  await until('the thread, woken, to commit the second segment', () => ahead.pending === 0, {
    state: () => `asleep: ${ahead.writerAsleep}`,
  });
  assert.equal(store.queries.totals().events, 2);
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('the writer thread starts with the first rows handed over: a store with no event to commit runs none', async () => {
  const { store, errors } = open();
  const ahead = new WriteAhead(store, { flushMs: 5, onError: (_op, err) => errors.push(err) });
  assert.equal(ahead.writerRunning, false, 'no thread before anything was recorded');
  assert.equal(store.queries.totals().events, 0);
  assert.equal(ahead.writerRunning, false, 'a read hands nothing over, so starts no thread');
  // A daemon's start and its VMs' HELLOs: a policy source and session rows, no event.
  store.recordPolicy('v1', 'fleet', 'rules: []');
  const s = session('vm-w', 1n);
  store.sessionOpened(s);
  await until(
    'the session row to be committed',
    () => store.db.prepare('SELECT COUNT(*) FROM sessions').pluck().get() === 1,
  );
  assert.equal(ahead.writerRunning, false, 'session and policy rows alone start no thread');
  assert.equal(store.db.prepare('SELECT COUNT(*) FROM policies').pluck().get(), 1);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 })]);
  await until('the writer thread to commit the row', () => ahead.pending === 0);
  assert.equal(ahead.writerRunning, true, 'the hand-over started it');
  assert.equal(store.queries.totals().events, 1);
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('past maxInFlight rows the verdict path waits for the thread, and every row is stored once', () => {
  const { store, errors } = open();
  // Every batch is handed over at once (maxPending 1) and in-flight rows pass the bound on every
  // second batch, so the verdict path waits (or commits here) again and again.
  const ahead = new WriteAhead(store, {
    maxPending: 1,
    maxInFlight: 2,
    onError: (_op, err) => errors.push(err),
  });
  const s = session('vm-a', 4n);
  for (let seq = 1; seq <= 2000; seq++) {
    ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
    assert.ok(ahead.pending <= 2, `pending ${ahead.pending} after event ${seq}, bound 2`);
  }
  ahead.flush();
  assert.equal(store.queries.totals().events, 2000);
  assert.ok(ahead.backpressureMs > 0, 'the waits at the bound are counted');
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('past maxInFlight, updates make the caller wait for the thread too: a connect storm cannot grow memory', async () => {
  const { store, errors } = open();
  const ahead = new WriteAhead(store, {
    maxPending: 1,
    maxInFlight: 2,
    onError: (_op, err) => errors.push(err),
  });
  // From now on every session row is handed to the thread at once.
  await startWriter(ahead, session('vm-first', 1n));
  for (let id = 2n; id <= 2001n; id++) {
    const s = session(`vm-${id}`, id);
    store.sessionOpened(s);
    store.sessionClosed(s, 'disconnect', 'gone');
    const held = ahead.health.heldUpdates;
    assert.ok(held <= 2, `${held} updates in memory after session ${id}, bound 2`);
  }
  ahead.flush();
  assert.equal(ahead.health.heldUpdates, 0);
  assert.equal(
    store.db.prepare('SELECT COUNT(*) FROM sessions WHERE closed_ms IS NOT NULL').pluck().get(),
    2000,
    'every session row stored, closed',
  );
  assert.ok(ahead.backpressureMs > 0, 'the waits at the bound are counted');
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

/**
 * A write-ahead with a running thread that is handed a large segment (20,000 rows) to read and
 * commit first, then one of `small` rows behind it: what a test does to the small one's file right
 * after the hand-over takes microseconds, against the milliseconds of reading the large one.
 * Returns them, with the small segment's file name.
 */
async function smallBehindLarge(vm: string, small: number) {
  const { dir, store, errors } = open();
  const ahead = new WriteAhead(store, {
    flushMs: 3_600_000,
    maxPending: 1_000_000,
    onError: (_op, err) => errors.push(err),
  });
  const s = session(vm, 5n);
  // A thread already running, so that nothing below waits for its start.
  await startWriter(ahead, s);
  let seq = 1;
  for (let i = 0; i < 20_000; i++) ahead.record([record({ session: s, seq: ++seq, timeMs: T0 + seq })]);
  void ahead.settle(); // hands the large one over
  for (let i = 0; i < small; i++) ahead.record([record({ session: s, seq: ++seq, timeMs: T0 + seq })]);
  void ahead.settle(); // and the small one behind it
  const file = segmentsIn(dir)
    .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()))
    .at(-1);
  assert.ok(file, 'the small segment is on disk');
  return { dir, store, errors, ahead, small: file };
}

test('a segment whose file is gone before the thread reads it: its rows are counted as lost, once', async () => {
  // Its file goes as with its directory.
  const { dir, store, errors, ahead, small: gone } = await smallBehindLarge('vm-l', 1);
  rmSync(`${dir}/${gone}`);
  await until('both segments acknowledged', () => ahead.pending === 0);
  assert.equal(store.queries.totals().events, 20_001, 'the large segment and the first row are stored');
  assert.equal(ahead.health.droppedRows, 1, 'the lost row is counted');
  const lost = errors.filter((e) => (e as { code?: string }).code === 'SEAWALL_STORE_LOST');
  assert.equal(lost.length, 1);
  assert.match(String((lost[0] as Error).message), new RegExp(`1 answered events lost: .*${gone}`));
  ahead.close();
  store.close();
});

test('a segment damaged before the thread reads it: the rows before the damage are stored, the rest counted lost, the file kept', async () => {
  // Its second record's length is damaged.
  const { dir, store, errors, ahead, small } = await smallBehindLarge('vm-m', 3);
  const { bytes, second } = damageSecond(`${dir}/${small}`, (b, at) => b.writeUInt32LE(2, at + 1));
  await until('both segments acknowledged', () => ahead.pending === 0);
  assert.equal(store.queries.totals().events, 20_002, 'the large segment, and the small one’s first row');
  assert.equal(ahead.health.droppedRows, 2, 'the two rows past the damage are counted');
  assert.match(
    lostOnce(errors),
    new RegExp(
      `^2 answered events lost: .*${small}: bytes ${second}–${bytes.length} are not records .*kept as`,
    ),
  );
  assertKept(dir, small, bytes);
  ahead.close();
  store.close();
});

/** Damages the second record of the file at `path` with `damage`; the file's bytes and where that record starts. */
function damageSecond(path: string, damage: (bytes: Buffer, at: number) => void) {
  const bytes = readFileSync(path);
  const second = 5 + bytes.readUInt32LE(1) + 1; // past the first record and its newline
  damage(bytes, second);
  writeFileSync(path, bytes);
  return { bytes, second };
}

/** The one SEAWALL_STORE_LOST error's message. */
function lostOnce(errors: unknown[]): string {
  const lost = errors.filter((e) => (e as { code?: string }).code === 'SEAWALL_STORE_LOST');
  assert.equal(lost.length, 1);
  return String((lost[0] as Error).message);
}

/** The segment `name` in `dir` was set aside as it was, for reading by hand. */
function assertKept(dir: string, name: string, bytes: Buffer): void {
  const kept = readdirSync(dir).filter((n) => n.startsWith(`${name}.set-aside-`));
  assert.equal(kept.length, 1, 'kept for reading by hand');
  assert.deepEqual(readFileSync(`${dir}/${kept[0]}`), bytes);
}

test('a segment with a record that is not a row: the thread stores the others, counts it lost, keeps the file', async () => {
  const { dir, store, errors, ahead, small } = await smallBehindLarge('vm-r', 3);
  // Its first column's tag: none that seawall writes.
  const { bytes } = damageSecond(`${dir}/${small}`, (b, at) => {
    b[at + 5] = 0x7f;
  });
  await until('both segments acknowledged', () => ahead.pending === 0);
  assert.equal(
    store.queries.totals().events,
    20_003,
    'the first row, the large segment, the small one’s first and third',
  );
  assert.equal(ahead.health.droppedRows, 1, 'the row not read is counted');
  assert.match(
    lostOnce(errors),
    new RegExp(
      `^1 answered events lost: .*${small}: 1 of its records are not rows .*the 2 rows read are stored.*kept as`,
    ),
  );
  assertKept(dir, small, bytes);
  ahead.close();
  store.close();
});

test('without a thread, a damaged segment is committed up to the damage on the event loop and kept', () => {
  const { dir, path, store, errors } = open();
  const ahead = new WriteAhead(store, {
    thread: false,
    flushMs: 3_600_000,
    onError: (_op, err) => errors.push(err),
  });
  const s = session('vm-n', 5n);
  for (let seq = 1; seq <= 3; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  damageSecond(`${path}.pending`, (b, at) => b.writeUInt32LE(2, at + 1));
  ahead.flush();
  assert.equal(store.queries.totals().events, 1);
  assert.equal(ahead.health.droppedRows, 2);
  assert.match(String((errors[0] as Error).message), /^2 answered events lost: .*are not records .*kept as/);
  assert.equal(readdirSync(dir).filter((n) => n.includes('.set-aside-')).length, 1);
  ahead.close();
  store.close();
});

test('the writer thread waits out a write lock held for longer than the event loop would: no fault', async (t) => {
  const { path, store, errors } = open();
  const health: boolean[] = [];
  const ahead = new WriteAhead(store, {
    flushMs: 3_600_000,
    onError: (_op, err) => errors.push(err),
    onHealth: (h) => health.push(h.healthy),
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-w', 6n);
  await startWriter(ahead, s);
  // A retention slice descheduled on a busy host holds the lock like this: for 600 ms, past the
  // event loop's 250 ms busy timeout and within the thread's.
  const release = lockDatabase(t, path);
  ahead.record([record({ session: s, seq: 2, timeMs: T0 + 2 })]);
  void ahead.settle();
  setTimeout(release, 600);
  await until('the thread to commit the row once the lock is released', () => ahead.pending === 0);
  assert.deepEqual(health, [], `never reported faulty: ${errors.map(String).join('; ')}`);
  assert.deepEqual(errors, []);
  assert.equal(store.queries.totals().events, 2);
});

test('a replay of an event in the same batch, the file, a segment or the store is recognised', () => {
  const { store } = open();
  // Two rows fill the file: the second record hands it over to the thread at once.
  const ahead = new WriteAhead(store, { maxPending: 2 });
  const replayOf = (seq: number, sessionId: bigint) =>
    record({ session: session('vm-r', sessionId), seq, timeMs: T0, replay: true });
  const s = session('vm-r', 1n);

  // An event and its replay in one batch: a plugin whose deadline passed before the daemon read
  // the event sends both back to back, and one tick can decide the one and receive the other.
  const sameBatch = replayOf(8, 1n);
  ahead.record([record({ session: s, seq: 8, timeMs: T0 }), sameBatch]);
  assert.equal(sameBatch.duplicate, true, 'same batch');

  const first = record({ session: s, seq: 9, timeMs: T0 });
  ahead.record([first]);
  // Handed over: a segment whose commit this thread has not heard of (the ack is a message that
  // only the event loop delivers, and it has not turned since).
  assert.equal(ahead.pending, 2);
  const inSegment = replayOf(9, 3n);
  ahead.record([inSegment]);
  assert.equal(inSegment.duplicate, true, 'in a segment');

  const original = record({ session: s, seq: 10, timeMs: T0 });
  ahead.record([original]);
  const inFile = replayOf(10, 2n);
  ahead.record([inFile]);
  assert.equal(inFile.duplicate, true, 'in the file');

  ahead.flush();
  const stored = replayOf(9, 4n);
  ahead.record([stored]);
  assert.equal(stored.duplicate, true, 'stored');
  assert.equal(store.queries.totals().events, 3);
  assert.equal(store.queries.totals().replays, 0);
  ahead.close();
  store.close();
});

test('at open, the pending file and every segment a killed daemon left are inserted, once', () => {
  const { dir, path, store } = open();
  const s = session('vm-k', 5n);
  const rowsOf = (from: number, to: number) =>
    store.rowsOf(
      Array.from({ length: to - from + 1 }, (_, i) => record({ session: s, seq: from + i, timeMs: T0 })),
    );
  const pending = `${path}.pending`;
  const first = rowsOf(1, 10);
  writeFileSync(segmentPath(pending, 2), `${first.map(encodeRow).join('\n')}\n`);
  writeFileSync(segmentPath(pending, 11), `${rowsOf(11, 20).map(encodeRow).join('\n')}\n`);
  // The live file, with a torn last line: that batch's verdicts never left.
  writeFileSync(pending, `${rowsOf(21, 25).map(encodeRow).join('\n')}\n["bo`);
  // Part of a segment committed just before the kill: the same rows (their ids) again.
  store.appendRows(first.slice(0, 3).map((r) => r.values));
  const ahead = new WriteAhead(store);
  assert.equal(ahead.recovered, 25);
  assert.deepEqual(segmentsIn(dir), []);
  assert.equal(store.queries.totals().events, 25);
  ahead.close();
  store.close();
  assert.ok(existsSync(pending));
});

test('segments in the JSON-object encoding of earlier versions are recovered beside the array one', () => {
  const { dir, path, store } = open();
  const pending = `${path}.pending`;
  // Two rows as the earlier encoder wrote them (`{"params":{…},"poison":…,"key":…}`), the second
  // from before events had an order (no ord: its seq stands for it), then a torn line.
  const old = readFileSync(new URL('./fixtures/pending-json-objects.txt', import.meta.url), 'utf8');
  writeFileSync(segmentPath(pending, 1), `${old}{"params":{"boot_id":"`);
  const s = session('vm-new', 8n);
  const fresh = store.rowsOf([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0, gpa: 0x9000n })));
  // Written after the older rows were recovered, by the seawall that recovered them: ids past theirs
  // (SQLite gave them ids as they went in).
  for (const [i, r] of fresh.entries()) r.values[COL.id] = 100 + i;
  writeFileSync(segmentPath(pending, 2), `${fresh.map(encodeRow).join('\n')}\n`);
  const ahead = new WriteAhead(store);
  assert.equal(ahead.recovered, 5);
  assert.deepEqual(segmentsIn(dir), []);
  const q = store.queries;
  const olds = q.events({ vm: 'vm-old' }).sort((a, b) => a.seq - b.seq);
  assert.deepEqual(
    olds.map((e) => [e.seq, e.gpa, e.rule, e.labels.tenant, e.sessionId]),
    [
      [1, '0x0000000080001000', 'inject-data', 't1', 7],
      [2, '0x0000000040002000', 'inject-data', 't1', 7],
    ],
  );
  assert.equal(q.events({ vm: 'vm-new' }).length, 3);
  // The poisoned-page table is derived from the values in both encodings.
  const pages = q
    .poisonedPages()
    .map((p) => `${p.vm} ${p.gpa} ${p.count}`)
    .sort();
  assert.deepEqual(pages, [
    'vm-new 0x0000000000009000 3',
    'vm-old 0x0000000040002000 1',
    'vm-old 0x0000000080001000 1',
  ]);
  ahead.close();
  store.close();
});

test('a line is decoded only when whole: torn, foreign or short lines are skipped', () => {
  const { store } = open();
  const [row] = store.rowsOf([record({ session: session('vm-d', 1n), seq: 1, timeMs: T0 })]);
  const line = encodeRow(row as NonNullable<typeof row>);
  assert.deepEqual(decodeLine(line), row?.values);
  for (const bad of [line.slice(0, -1), line.slice(0, 20), '[1,2,3]', '{"key":"x"}', 'null', '42'])
    assert.equal(decodeLine(bad), null, bad);
  store.close();
});

test('close commits everything still pending; the store reopens with every row and no segment', () => {
  const { dir, path, store } = open();
  const ahead = new WriteAhead(store, { maxPending: 8 });
  const s = session('vm-c', 1n);
  for (let seq = 1; seq <= 100; seq++) ahead.record([record({ session: s, seq, timeMs: T0 })]);
  ahead.close();
  store.close();
  assert.deepEqual(segmentsIn(dir), []);
  const again = new EventStore({ path });
  assert.equal(again.queries.totals().events, 100);
  again.close();
});

test('segments queued for the writer thread share one transaction; a bad one is kept alone', async () => {
  const { dir, store } = open();
  const errors: unknown[] = [];
  // Every record is handed over at once, so the loop queues a segment per event — all posted
  // before the thread, started by the first, has loaded and opened its connection.
  const ahead = new WriteAhead(store, { maxPending: 1, onError: (_op, err) => errors.push(err) });
  const s = session('vm-q', 5n);
  const SEGMENTS = 40;
  for (let seq = 1; seq <= SEGMENTS; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  await until('the writer thread to commit every queued segment', () => ahead.pending === 0, {
    state: () => `${ahead.pending} rows pending, ${ahead.writerCommits} commits`,
  });
  assert.equal(store.queries.totals().events, SEGMENTS);
  // One transaction per wake-up, however many segments were waiting: far fewer than segments.
  assert.ok(ahead.writerCommits < SEGMENTS / 2, `${ahead.writerCommits} commits for ${SEGMENTS} segments`);
  assert.deepEqual(segmentsIn(dir), []);
  assert.deepEqual(errors, []);

  ahead.close();

  // A second daemon's thread finds six segments queued, one of them with a row the store refuses
  // (a trigger stands for a disk fault): the merged transaction fails, the thread commits the
  // segments one by one, and only the bad one is kept on disk for a later attempt.
  store.db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON event_rows WHEN NEW.seq = 1003
    BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
  const faults: unknown[] = [];
  const again = new WriteAhead(store, { maxPending: 1, onError: (_op, err) => faults.push(err) });
  for (let seq = 1001; seq <= 1006; seq++) again.record([record({ session: s, seq, timeMs: T0 + seq })]);
  await until('the thread to commit all but the refused segment', () => again.pending === 1, {
    state: () => `${again.pending} rows pending, errors ${faults.map(String).join('; ') || 'none'}`,
  });
  assert.match(String(faults[0]), /refused by the test/);
  assert.equal(segmentsIn(dir).length, 1, 'the refused segment stays on disk');
  const stored = store.db.prepare('SELECT seq FROM events WHERE seq > 1000 ORDER BY seq').pluck();
  assert.deepEqual(stored.all(), [1001, 1002, 1004, 1005, 1006]);
  // Once the fault is gone, the kept segment is committed like any other.
  store.db.exec('DROP TRIGGER refuse');
  again.flush();
  assert.deepEqual(stored.all(), [1001, 1002, 1003, 1004, 1005, 1006]);
  assert.deepEqual(segmentsIn(dir), []);
  again.close();
  store.close();
});

for (const thread of [false, true])
  test(`commits a locked database refuses (${thread ? 'writer thread' : 'on the event loop'}) are one fault, retried until they succeed`, async (t) => {
    // Failed commits on the event loop are reported by the store, the thread's by WriteAhead.
    const { path, store, errors } = open();
    const health: boolean[] = [];
    const ahead = new WriteAhead(store, {
      thread,
      flushMs: 5,
      checkMs: 50,
      onError: (_op, err) => errors.push(err),
      onHealth: (h) => health.push(h.healthy),
    });
    const release = lockDatabase(t, path);
    t.after(() => {
      ahead.close();
      store.close();
    });
    const s = session('vm-l', 1n);
    for (let seq = 1; seq <= 10; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
    await until('the refused commit to be reported as a fault', () => health.includes(false), {
      state: () => `health ${health.join(',')}, ${ahead.pending} pending`,
    });
    // While faulty, answered events are held in memory instead of written ahead: none is lost.
    for (let seq = 11; seq <= 15; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
    assert.equal(ahead.pending + ahead.health.heldRows, 15, 'every answered event is pending or held');
    // Retries that fail too are the same fault: it ends only when a commit succeeds.
    await until('two retries to fail as well', () => errors.length >= 3, {
      state: () => `${errors.length} errors, health ${health.join(',')}`,
    });
    assert.deepEqual(health, [false], 'still the one fault');
    release();
    await until('the retry to commit everything', () => ahead.health.healthy && ahead.pending === 0, {
      state: () => `health ${health.join(',')}, ${ahead.pending} pending, ${ahead.health.heldRows} held`,
    });
    assert.deepEqual(health, [false, true], 'one fault, one recovery');
    // Opening needs no write lock: the thread opened beside the lock, and only its commits failed.
    const died = errors.filter((e) => /cannot open/.test((e as Error).message));
    assert.deepEqual(died, [], 'the writer thread never failed to open');
    assert.equal(store.queries.totals().events, 15);
  });

test('through a fault, the event loop’s retries never wait for a lock another process holds', async (t) => {
  // No writer thread (a host with no memory error yet, or one whose thread died): the commits and
  // the once-a-second retries run on the event loop. Each retry waited out the busy timeout while
  // the lock lasted: a quarter of every second, every VM's verdicts with it.
  const { path, store } = open();
  const ahead = new WriteAhead(store, { thread: false, flushMs: 1, checkMs: 20 });
  const release = lockDatabase(t, path);
  t.after(() => {
    ahead.close();
    store.close();
  });
  const timeouts: number[] = [];
  const commit = store.appendRows.bind(store);
  store.appendRows = (rows, updates) => {
    timeouts.push(store.db.pragma('busy_timeout', { simple: true }) as number);
    return commit(rows, updates);
  };
  // A session row: its transaction writes first, so each attempt waited for the lock in full.
  store.sessionOpened(session('vm-b', 4n));
  await until('the first commit and three retries to fail', () => timeouts.length >= 4, {
    state: () => `busy timeouts ${timeouts.join(',')}, healthy ${ahead.health.healthy}`,
  });
  assert.equal(ahead.health.healthy, false);
  // The first waited (a lock held for a moment, a retention pass's, is no fault); then none did.
  assert.deepEqual(timeouts.slice(0, 4), [250, 0, 0, 0]);
  release();
  const sessions = store.db.prepare('SELECT COUNT(*) FROM sessions').pluck();
  await until('the session row to be stored', () => ahead.health.healthy && sessions.get() === 1);
  assert.equal(
    store.db.pragma('busy_timeout', { simple: true }),
    250,
    'the timeout is back for other writes',
  );
});

test('session, action and policy rows go with the next hand-over: a locked database never holds up the event loop for them', async (t) => {
  const { path, store, errors } = open();
  const ahead = new WriteAhead(store, { flushMs: 5, checkMs: 50, onError: (_op, err) => errors.push(err) });
  const release = lockDatabase(t, path);
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-s', 9n);
  // On the event loop's connection each of these waited out the busy timeout and then failed.
  const start = errors.length;
  store.sessionOpened(s);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 })]);
  const kill = store.recordAction({
    vm: 'vm-s',
    action: 'kill',
    rule: 'r',
    outcome: 'requested',
    event: { sessionId: 9n, seq: 1 },
  });
  store.recordPolicy('v1', 'fleet', 'rules: []');
  store.actionEnded(kill, 'done', 'SIGKILL');
  store.sessionClosed(s, 'disconnect', 'peer went away');
  assert.equal(errors.length, start, 'nothing was tried on the locked database here');
  release();
  await until('the writer thread to commit', () => ahead.pending === 0 && ahead.health.healthy);
  ahead.flush();
  const row = store.db
    .prepare('SELECT vm, vcpu_count, outcome, detail, closed_ms FROM sessions WHERE session_id = 9')
    .get();
  assert.deepEqual(
    { ...(row as Record<string, unknown>), closed_ms: typeof (row as { closed_ms: unknown }).closed_ms },
    { vm: 'vm-s', vcpu_count: 8, outcome: 'disconnect', detail: 'peer went away', closed_ms: 'number' },
  );
  const action = store.db.prepare('SELECT id, outcome, detail, boot_id, session_id, seq FROM actions').all();
  assert.deepEqual(
    action.map((r) => ({ ...(r as object) })),
    [{ id: kill[1], outcome: 'done', detail: 'SIGKILL', boot_id: store.bootId, session_id: 9, seq: 1 }],
  );
  assert.equal(
    store.db.prepare("SELECT source FROM policies WHERE version = 'v1'").pluck().get(),
    'rules: []',
  );
});

test('a failed segment whose file is gone is retried for its updates, and the fault clears', async (t) => {
  const { dir, path, store, errors } = open();
  const health: boolean[] = [];
  const ahead = new WriteAhead(store, {
    thread: false,
    flushMs: 60_000,
    checkMs: 20,
    onError: (_op, err) => errors.push(err),
    onHealth: (h) => health.push(h.healthy),
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-g', 2n);
  store.sessionOpened(s);
  ahead.record([record({ session: s, seq: 1, timeMs: T0 })]);
  const release = lockDatabase(t, path);
  ahead.flush();
  assert.deepEqual(health, [false], 'the segment with the row and the session failed to commit');
  // What a writer thread leaves that unlinked the segment once committed and died before its
  // acknowledgement arrived, or an operator removing it: the segment's rows cannot be read again.
  assert.equal(segmentsIn(dir).length, 1);
  for (const name of segmentsIn(dir)) rmSync(`${dir}/${name}`);
  release();
  await until('the retry to end the fault', () => ahead.health.healthy, {
    state: () => `health ${health.join(',')}, ${ahead.pending} pending, ${ahead.health.heldUpdates} updates`,
  });
  assert.deepEqual(health, [false, true]);
  assert.equal(ahead.pending, 0, 'the rows of the file that is gone are no longer counted as pending');
  assert.equal(ahead.health.heldUpdates, 0);
  assert.equal(
    store.db.prepare('SELECT vm FROM sessions WHERE session_id = 2').pluck().get(),
    'vm-g',
    "the segment's session row, in memory, was stored",
  );
});

/**
 * A store whose directory the test removes, with a write-ahead layer that makes it again before
 * reopening, as the service does; closed after the test. `lost` is what it reported of answered
 * events not stored.
 */
function openRemadeOnLoss(t: TestContext, opts: WriteAheadOptions) {
  const { dir, path, store, errors } = open();
  const ahead = new WriteAhead(store, {
    ...opts,
    onError: (_op, err) => errors.push(err),
    prepareReopen: () => mkdirSync(dir, { recursive: true, mode: 0o700 }),
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const lost = () =>
    errors.filter((e) => /not stored|answered events lost/.test(String((e as Error).message)));
  return { dir, path, store, ahead, lost };
}

/** The events a store file holds, opened anew. */
function storedIn(path: string): number {
  const reopened = new EventStore({ path });
  try {
    return reopened.queries.totals().events;
  } finally {
    reopened.close();
  }
}

for (const first of ['hand-over', 'check'] as const)
  test(`the state directory removed under the store, found by the ${first === 'hand-over' ? 'hand-over' : 'once-a-second check'}: the rows of the file being appended are stored, none lost`, async (t) => {
    const { dir, path, store, ahead, lost } = openRemadeOnLoss(t, {
      checkMs: 20,
      // The check's 20 ms come first when the hand-over waits this long.
      ...(first === 'check' ? { flushMs: 1_500 } : {}),
    });
    const s = session('vm-gone', 5n);
    await startWriter(ahead, s);
    // Rows in the file being appended to, not handed over yet.
    const rows = 300;
    for (let seq = 2; seq <= rows + 1; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
    assert.equal(ahead.pending, rows);
    // Updates written ahead to the same file: a session row and an APPLIED result.
    store.sessionOpened(session('vm-opened', 6n));
    store.markApplied(5n, rows, -5);
    rmSync(dir, { recursive: true });
    // The hand-over finds no directory to rename the file in, or the check finds the store gone
    // first: either way the rows are held, and the retry reopens the store in the directory made
    // again, writes them ahead there and commits them.
    if (first === 'hand-over') void ahead.settle();
    await until('every row stored again', () => ahead.pending === 0 && ahead.health.healthy, {
      state: () => `${ahead.pending} pending, ${JSON.stringify(ahead.health)}`,
    });
    assert.equal(store.queries.totals().events, rows, 'the new file holds the rows of the old one');
    const one = (sql: string) => store.db.prepare(sql).pluck().get();
    assert.equal(one("SELECT COUNT(*) FROM sessions WHERE vm = 'vm-opened'"), 1, 'and its session row');
    assert.equal(one(`SELECT applied FROM events WHERE seq = ${rows}`), -5, 'and its APPLIED result');
    assert.equal(ahead.health.droppedRows, 0);
    assert.deepEqual(lost(), [], 'no answered event is reported lost');
    ahead.close();
    store.close();
    assert.equal(storedIn(path), rows);
  });

for (const thread of [false, true])
  test(`the state directory removed just before close (${thread ? 'with' : 'without'} a writer thread): the rows of the file are stored in it made again, none lost`, (t) => {
    const { dir, path, store, ahead, lost } = openRemadeOnLoss(t, { thread });
    const s = session('vm-closing', 8n);
    for (let seq = 1; seq <= 50; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
    rmSync(dir, { recursive: true });
    // No check has run: the hand-over at close is the first to find the directory gone.
    ahead.close();
    store.close();
    assert.deepEqual(lost(), [], 'no answered event is reported lost');
    assert.equal(storedIn(path), 50);
  });
