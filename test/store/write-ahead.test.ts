/**
 * The write-ahead layer with its writer thread: rows reach SQLite off the event loop, reads see
 * everything recorded so far, APPLIED results find rows still queued, replays are recognised while
 * their original is only in a segment, and segments a killed daemon left are recovered at open.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { EventStore, WriteAhead } from '../../store/index.js';
import { segmentPath, toJson } from '../../store/segments.js';
import { record, session, tempStorePath } from './records.js';

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

test('the writer thread commits handed-over segments and deletes them; reads see every row', async () => {
  const { dir, store, errors } = open();
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err) });
  const s = session('vm-a', 3n);
  for (let seq = 1; seq <= 50; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  ahead.markApplied(3n, 7, -5);
  assert.equal(ahead.pending, 50);
  // Past one tick the rows are a segment the thread owns; a read waits for its commit.
  await delay(40);
  assert.equal(store.queries.totals().events, 50);
  assert.equal(ahead.pending, 0);
  assert.equal(store.queries.events().find((e) => e.seq === 7)?.applied, -5);
  // The thread deleted the committed segment.
  for (let i = 0; i < 50 && segmentsIn(dir).length > 0; i++) await delay(10);
  assert.deepEqual(segmentsIn(dir), []);
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('a replay of an event still pending (file or segment) or stored is recognised', async () => {
  const { store } = open();
  const ahead = new WriteAhead(store);
  const s = session('vm-r', 1n);
  const original = record({ session: s, seq: 9, timeMs: T0 });
  ahead.record([original]);
  const inFile = record({ session: session('vm-r', 2n), seq: 9, timeMs: T0, replay: true });
  ahead.record([inFile]);
  assert.equal(inFile.duplicate, true);
  await delay(30); // handed over: a segment now, perhaps not committed yet
  const inSegment = record({ session: session('vm-r', 3n), seq: 9, timeMs: T0, replay: true });
  ahead.record([inSegment]);
  assert.equal(inSegment.duplicate, true);
  ahead.flush();
  const stored = record({ session: session('vm-r', 4n), seq: 9, timeMs: T0, replay: true });
  ahead.record([stored]);
  assert.equal(stored.duplicate, true);
  assert.equal(store.queries.totals().events, 1);
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
  writeFileSync(segmentPath(pending, 2), `${rowsOf(1, 10).map(toJson).join('\n')}\n`);
  writeFileSync(segmentPath(pending, 11), `${rowsOf(11, 20).map(toJson).join('\n')}\n`);
  // The live file, with a torn last line: that batch's verdicts never left.
  writeFileSync(pending, `${rowsOf(21, 25).map(toJson).join('\n')}\n{"params":{"bo`);
  store.appendRows(rowsOf(1, 3)); // a segment committed just before the kill
  const ahead = new WriteAhead(store);
  assert.equal(ahead.recovered, 25);
  assert.deepEqual(segmentsIn(dir), []);
  assert.equal(store.queries.totals().events, 25);
  ahead.close();
  store.close();
  assert.ok(existsSync(pending));
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
