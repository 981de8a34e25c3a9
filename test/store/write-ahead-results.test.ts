/**
 * APPLIED results are written ahead with the rows: a daemon killed while its segments wait for
 * the writer thread — a storm, a locked database — leaves them on disk, and the next start sets
 * them on their events (store/segments.ts `encodeResult`). Killed daemons are stood for by copying
 * the files one left, while it is still open, into another directory and starting there.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { decodeResult, encodeResult, readRows } from '../../store/segments.js';
import { lockDatabase, record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The write-ahead files of the store at `path`, copied beside `copy` (a fresh store path), as a kill leaves them. */
function leftBehind(path: string, copy = freshPath()): string {
  const from = join(path, '..');
  for (const name of readdirSync(from).filter((n) => n.startsWith(`${basename(path)}.pending`)))
    copyFileSync(join(from, name), join(copy, '..', name.replace(basename(path), basename(copy))));
  return copy;
}

function freshPath(): string {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  return path;
}

/** Each event's [applied, fallback_action] by seq, in the store at `path`, after recovering what was left there. */
function recovered(path: string): Record<number, [number | null, number | null]> {
  const store = new EventStore({ path, bootId: 'after' });
  const ahead = new WriteAhead(store, { thread: false });
  const rows = store.db
    .prepare("SELECT seq, applied, fallback_action FROM events WHERE boot_id = 'before' ORDER BY seq")
    .raw()
    .all() as [number, number | null, number | null][];
  ahead.close();
  store.close();
  return Object.fromEntries(rows.map(([seq, ...rest]) => [seq, rest]));
}

/**
 * A store of boot 'before' and its write-ahead on the event loop, closed after the test; no
 * hand-over but those the test makes (as within one flushMs).
 */
function opened(t: TestContext, opts: { checkMs?: number; onError?: () => void } = {}) {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, bootId: 'before', onError: opts.onError });
  const ahead = new WriteAhead(store, { flushMs: 3_600_000, thread: false, checkMs: opts.checkMs });
  t.after(() => {
    ahead.close();
    store.close();
  });
  return { dir, path, store, ahead };
}

test('results received before the last rows written survive a kill with the live file', (t) => {
  // No hand-over within the test: everything stays in the live file, as within one flushMs.
  const { path, store, ahead } = opened(t);
  const s = session('vm-r', 3n);
  ahead.record([1, 2, 3, 4].map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  store.markApplied(s.id, 1, 0);
  store.markApplied(s.id, 2, -22, 3);
  ahead.record([record({ session: s, seq: 5, timeMs: T0 + 5 })]);
  // After the last rows written: only in memory, lost with the process (within flushMs).
  store.markApplied(s.id, 3, 0);
  assert.deepEqual(recovered(leftBehind(path)), {
    1: [0, null],
    2: [-22, 3],
    3: [null, null],
    4: [null, null],
    5: [null, null],
  });
});

test('results received after the last rows survive a kill once handed over, with the rows committed', (t) => {
  const { path, store, ahead } = opened(t);
  const s = session('vm-r', 6n);
  ahead.record([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  ahead.flush(); // the rows are committed, their segment removed
  // The database as a kill would leave it: the rows, and the result not yet committed.
  const copy = freshPath();
  for (const suffix of ['', '-wal']) copyFileSync(`${path}${suffix}`, `${copy}${suffix}`);
  store.markApplied(s.id, 2, -22, 3);
  ahead.flush(); // a hand-over of results only: no rows, so no segment
  leftBehind(path, copy);
  assert.deepEqual(recovered(copy), { 1: [null, null], 2: [-22, 3], 3: [null, null] });
});

test('results of a segment whose commit waits (a locked database) survive a kill with the segment', (t) => {
  const { dir, path, store, ahead } = opened(t, { checkMs: 3_600_000, onError: () => {} });
  const s = session('vm-r', 4n);
  ahead.record([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  store.markApplied(s.id, 1, -5);
  store.markApplied(s.id, 3, 0);
  const release = lockDatabase(t, path);
  ahead.flush(); // the segment is made, and its commit fails on the lock
  assert.equal(ahead.health.healthy, false, 'the commit waits for the retry');
  assert.equal(readdirSync(dir).filter((n) => /\.pending\.\d+$/.test(n)).length, 1, 'the segment is on disk');
  const copy = leftBehind(path);
  release();
  assert.deepEqual(recovered(copy), { 1: [-5, null], 2: [null, null], 3: [0, null] });
});

test('the writer thread reads a segment’s rows only; a result line is told apart, foreign ones skipped', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, bootId: 'before' });
  const s = session('vm-r', 5n);
  const [row] = store.rowsOf([record({ session: s, seq: 1, timeMs: T0 })]);
  store.close();
  const line = encodeResult('before')([5, 1, 0, T0, null]);
  assert.equal(line, JSON.stringify(['applied', 'before', 5, 1, 0, T0, null]));
  assert.equal(encodeResult('b"\\')([1, 2, -5, 3, 4]), JSON.stringify(['applied', 'b"\\', 1, 2, -5, 3, 4]));
  const file = join(dir, 'segment');
  const foreign = ['["applied","b",1,1,0]', '["applied","b","x",1,0,1,null]', '["applied",'];
  writeFileSync(file, `${[JSON.stringify(row?.values), line, ...foreign].join('\n')}\n`);
  const results: NonNullable<ReturnType<typeof decodeResult>>[] = [];
  assert.equal(readRows(file).length, 1);
  assert.equal(readRows(file, results).length, 1);
  assert.deepEqual(results, [{ bootId: 'before', update: [5, 1, 0, T0, null] }]);
  for (const bad of foreign) assert.equal(decodeResult(bad), null, bad);
  assert.ok(readFileSync(file, 'utf8').includes(line));
});
