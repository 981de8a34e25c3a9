/**
 * What is written after the rows — APPLIED results, session, action and policy rows — is written
 * ahead with them: a daemon killed while its segments wait for the writer thread — a storm, a
 * locked database — leaves them on disk, and the next start stores them (store/update-lines.ts).
 * Killed daemons are stood for by copying the files one left, while it is still open, into
 * another directory and starting there.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { readRows } from '../../store/segments.js';
import { decodeUpdate, encodeResult, encodeUpdate } from '../../store/update-lines.js';
import { type AppliedUpdate, type PolicyUpdate, type StoreUpdate, sessionRow } from '../../store/updates.js';
import { until } from '../helpers/wait.js';
import { copyWriteAhead, lockDatabase, record, session, tempStorePath, threadedStore } from './records.js';

const T0 = Date.UTC(2026, 11, 2, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The write-ahead files of the store at `path`, copied beside `copy` (a fresh store path), as a kill leaves them. */
const leftBehind = (path: string, copy = freshPath()): string => copyWriteAhead(path, copy);

/** The segments in `dir`. */
const segments = (dir: string) => readdirSync(dir).filter((n) => /\.pending\.\d+$/.test(n));

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
  const store = new EventStore({ path, bootId: 'before', onError: opts.onError, now: () => T0 });
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

test('results received after the last rows survive a kill in a segment of their own while it waits', (t) => {
  const { dir, path, store, ahead } = opened(t, { checkMs: 3_600_000, onError: () => {} });
  const s = session('vm-r', 6n);
  ahead.record([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: T0 + seq })));
  ahead.flush(); // the rows are committed, their segment removed
  // The database as a kill would leave it: the rows, and the result not yet committed.
  const copy = freshPath();
  for (const suffix of ['', '-wal']) copyFileSync(`${path}${suffix}`, `${copy}${suffix}`);
  store.markApplied(s.id, 2, -22, 3);
  const release = lockDatabase(t, path);
  ahead.flush(); // a hand-over of results only, whose commit fails on the lock
  assert.deepEqual(segments(dir).length, 1, 'the results are in a segment of their own');
  leftBehind(path, copy);
  release();
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
  assert.equal(segments(dir).length, 1, 'the segment is on disk');
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
  const line = encodeResult('before')([5, 1, 0, T0, null, 1]);
  assert.equal(line, JSON.stringify(['applied', 'before', 5, 1, 0, T0, null, 1]));
  assert.equal(
    encodeResult('b"\\')([1, 2, -5, 3, 4, 9]),
    JSON.stringify(['applied', 'b"\\', 1, 2, -5, 3, 4, 9]),
  );
  // As a seawall before schema 9 wrote it: no row id.
  const older = JSON.stringify(['applied', 'before', 5, 2, -5, T0, 3]);
  const file = join(dir, 'segment');
  const foreign = [
    '["applied","b",1,1,0]',
    '["applied","b","x",1,0,1,null]',
    '["applied","b",1,1,0,1,null,"7"]',
    '["applied","b",1,1,0,1,null,7,8]',
    '["applied",',
  ];
  writeFileSync(file, `${[JSON.stringify(row?.values), line, older, ...foreign].join('\n')}\n`);
  const results: NonNullable<ReturnType<typeof decodeUpdate>>[] = [];
  assert.equal(readRows(file).rows.length, 1);
  assert.equal(readRows(file, results).rows.length, 1);
  assert.deepEqual(results, [
    { bootId: 'before', update: [5, 1, 0, T0, null, 1] },
    { bootId: 'before', update: [5, 2, -5, T0, 3, null] },
  ]);
  for (const bad of foreign) assert.equal(decodeUpdate(bad), null, bad);
  assert.ok(readFileSync(file, 'utf8').includes(line));
});

/** The session, action and policy rows in the store at `path`, after recovering what was left there. */
function recoveredRecords(path: string) {
  const store = new EventStore({ path, bootId: 'after', now: () => T0 + 60_000 });
  const ahead = new WriteAhead(store, { thread: false });
  const all = (sql: string) => store.db.prepare(sql).raw().all();
  try {
    // An action of the next boot comes after those recovered.
    const next = store.recordAction({ vm: 'vm-u', action: 'migrate', rule: null, outcome: 'requested' });
    ahead.flush();
    return {
      next: next[1],
      sessions: all(
        'SELECT boot_id, session_id, vm, closed_ms, outcome, detail FROM sessions ORDER BY session_id',
      ),
      actions: all('SELECT id, boot_id, vm, action, rule, outcome, session_id, seq FROM actions ORDER BY id'),
      policies: all('SELECT version, name, source FROM policies'),
    };
  } finally {
    ahead.close();
    store.close();
  }
}

test('session, action and policy rows written before the last rows survive a kill with the live file', (t) => {
  const { path, store, ahead } = opened(t);
  const s = session('vm-u', 7n);
  const gone = session('vm-v', 8n);
  store.recordPolicy('v1', 'default', 'rules: []\n');
  store.sessionOpened(gone);
  store.sessionClosed(gone, 'disconnect', 'peer closed');
  store.sessionOpened(s);
  const kill = store.recordAction({
    vm: 'vm-u',
    action: 'kill',
    rule: 'r1',
    outcome: 'requested',
    event: { sessionId: s.id, seq: 1 },
  });
  ahead.record([record({ session: s, seq: 1, timeMs: T0 + 1 })]);
  // After the last rows written: only in memory, lost with the process (within flushMs).
  store.actionEnded(kill, 'done');
  const after = recoveredRecords(leftBehind(path));
  assert.deepEqual(after.sessions, [
    ['before', 7, 'vm-u', T0 + 60_000, 'disconnect', 'daemon restarted'],
    ['before', 8, 'vm-v', T0, 'disconnect', 'peer closed'],
  ]);
  assert.deepEqual(after.actions, [
    [1, 'before', 'vm-u', 'kill', 'r1', 'requested', 7, 1],
    [2, null, 'vm-u', 'migrate', null, 'requested', null, null],
  ]);
  assert.equal(after.next, 2);
  assert.deepEqual(after.policies, [['v1', 'default', 'rules: []\n']]);
});

test('a file of updates alone becomes a segment and goes with its commit: nothing grows without rows', (t) => {
  const { dir, path, store, ahead } = opened(t);
  for (let i = 1n; i <= 3n; i++) {
    const s = session(`vm-${i}`, i);
    store.sessionOpened(s);
    store.sessionClosed(s, 'disconnect', null);
    ahead.flush();
    assert.equal(statSync(`${path}.pending`).size, 0, 'the live file is empty again');
    assert.deepEqual(segments(dir), []);
  }
  assert.equal(ahead.writerRunning, false);
  const closed = store.db.prepare('SELECT COUNT(*) FROM sessions WHERE closed_ms IS NOT NULL').pluck();
  assert.equal(closed.get(), 3);
});

test('update lines: each kind read back as written, in order; lines of the wrong shape skipped', () => {
  const { dir } = tempStorePath();
  dirs.push(dir);
  const s = session('vm-"x', 9n);
  const updates: Exclude<StoreUpdate, AppliedUpdate>[] = [
    ['open', ...sessionRow(s)],
    ['policy', 'v2', 'p', 'a: "b"\n', T0],
    ['action', 3, T0, 'vm-"x', 'kill', null, 'requested', null, T0, 9, 4],
    ['action-end', 3, T0, 'vm-"x', 'kill', null, 'failed', 'ESRCH', T0 + 1, null, null],
    ['close', ...sessionRow(s), T0 + 2, 'kill', null],
  ];
  const line = encodeUpdate('b"\\');
  assert.equal(
    line(updates[1] as PolicyUpdate),
    JSON.stringify(['update', 'b"\\', ...(updates[1] as PolicyUpdate)]),
  );
  const foreign = [
    '["update","b","open",1,"vm","{}",1,1,1,1]',
    '["update","b","close",1,"vm","{}",1,1,1,1,1,"kill",5]',
    '["update","b","action",1,1,"vm","kill",null,"done",null,1,"9",null]',
    '["update","b","action",1.5,1,"vm","kill",null,"done",null,1,null,null]',
    '["update","b","policy","v","n",null,1]',
    '["update","b","drop",1]',
    '["update",1,"policy","v","n","s",1]',
    '["update","b","policy","v","n","s",1',
  ];
  const file = join(dir, 'segment');
  writeFileSync(file, `${[...updates.map(line), ...foreign].join('\n')}\n`);
  const read: NonNullable<ReturnType<typeof decodeUpdate>>[] = [];
  assert.equal(readRows(file, read).rows.length, 0);
  assert.deepEqual(
    read,
    updates.map((update) => ({ bootId: 'b"\\', update })),
  );
  for (const bad of foreign) assert.equal(decodeUpdate(bad), null, bad);
});

test('the writer thread reads a segment’s updates from its file; one that lacks them is retried from memory', async (t) => {
  const opts = { bootId: 'before', now: () => T0 };
  const { path, store, ahead, errors } = threadedStore(t, opts, { flushMs: 3_600_000 });
  const s = session('vm-f', 2n);
  const applied = (seq: number) =>
    store.db.prepare('SELECT applied FROM events WHERE seq = ?').pluck().get(seq) as number | null;

  // Healthy: the results go to the thread in the segment's file, and are stored from there.
  ahead.record([record({ session: s, seq: 1, timeMs: T0 })]);
  store.markApplied(2n, 1, -5);
  ahead.flush();
  assert.equal(applied(1), -5);
  assert.deepEqual(errors, []);

  // A file that lost its update lines before the hand-over (a result's line written with the next
  // row, then taken out): the segment fails on the thread and its results are retried from memory.
  ahead.record([record({ session: s, seq: 2, timeMs: T0 })]);
  store.markApplied(2n, 2, -6);
  ahead.record([record({ session: s, seq: 3, timeMs: T0 })]);
  const live = `${path}.pending`;
  // Its rows are binary records (store/row-codec.ts), each ended by a newline; the result's line
  // starts after one.
  const bytes = readFileSync(live);
  const start = bytes.indexOf('\n["applied"') + 1;
  assert.ok(start > 0 && bytes.indexOf('\n["applied"', start) < 0, 'the result written ahead, once');
  const end = bytes.indexOf('\n', start) + 1;
  writeFileSync(live, Buffer.concat([bytes.subarray(0, start), bytes.subarray(end)]));
  ahead.flush();
  assert.match(errors.join('\n'), /holds 0 updates, 1 expected/);
  await until('the retry to store the results', () => ahead.health.healthy && applied(2) === -6);
  assert.equal(applied(1), -5);
  assert.equal(applied(3), null);
});
