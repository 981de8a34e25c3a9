/**
 * Updates — APPLIED results, session, action and policy rows — through a long store fault: they
 * wait in memory for the once-a-second retry, one segment of them in flight at a time, at most
 * `maxHeldUpdates` held; past that the oldest APPLIED results go first, then the oldest of the
 * rest, each counted and reported; the rest are stored once the fault clears. The fault is another
 * connection holding the write lock on a real SQLite file.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore, isStoreError, WriteAhead } from '../../store/index.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(): { path: string; store: EventStore; errors: unknown[] } {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const errors: unknown[] = [];
  const store = new EventStore({ path, onError: (_op, err) => errors.push(err) });
  return { path, store, errors };
}

const failedCommits = (errors: unknown[]) =>
  errors.filter((e) => isStoreError(e) && e.code === 'SEAWALL_STORE_WRITER').length;

const droppedReports = (errors: unknown[]) =>
  errors.filter(
    (e) => isStoreError(e) && e.code === 'SEAWALL_STORE_LOST' && /updates dropped/.test(e.message),
  );

test('through a long fault, with the writer thread retrying, the updates in memory stay bounded, and every one is stored or counted as dropped', async (t) => {
  const { path, store, errors } = open();
  const MAX = 100;
  const ahead = new WriteAhead(store, {
    flushMs: 1,
    checkMs: 20,
    maxHeldUpdates: MAX,
    onError: (_op, err) => errors.push(err),
  });
  const release = lockDatabase(t, path);
  t.after(() => {
    ahead.close();
    store.close();
  });
  ahead.record([record({ session: session('vm-u', 1n), seq: 1, timeMs: T0 })]);
  await until('the refused commit to begin a fault', () => !ahead.health.healthy);
  // VMs connecting through the fault; each `settle` hands over, as the flush timer would. Before
  // the bound, each hand-over left a segment of its own waiting for the retry, without limit.
  // In rounds, each ended by another failed commit: the retries put failed updates back meanwhile.
  const N = 1000;
  let most = 0;
  for (let i = 0; i < N; i++) {
    store.sessionOpened(session('vm-u', BigInt(100 + i)));
    await ahead.settle();
    most = Math.max(most, ahead.health.heldUpdates);
    if (i % 100 !== 99) continue;
    const before = failedCommits(errors);
    await until('a retry to fail', () => failedCommits(errors) > before);
  }
  // At most MAX held, and one segment of at most MAX in flight to the thread.
  assert.ok(most <= 2 * MAX, `${most} updates in memory at most, bound ${MAX} held + ${MAX} in flight`);
  assert.ok(ahead.health.droppedUpdates >= N - 2 * MAX, `${ahead.health.droppedUpdates} dropped`);
  assert.equal(ahead.health.healthy, false);
  release();
  await until('the retry to store the rest', () => ahead.health.healthy && ahead.health.heldUpdates === 0, {
    state: () => `health ${JSON.stringify(ahead.health)}`,
  });
  const stored = store.db
    .prepare('SELECT session_id FROM sessions ORDER BY session_id')
    .pluck()
    .all() as number[];
  assert.equal(stored.length + ahead.health.droppedUpdates, N, 'every update stored or counted as dropped');
  assert.equal(stored.at(-1), 100 + N - 1, 'the newest are kept');
  assert.ok(
    stored.length <= 2 * MAX,
    `${stored.length} stored: the held ones and those in flight at the end`,
  );
  const reported = droppedReports(errors).reduce<number>(
    (n, e) => n + Number(/^(\d+)/.exec((e as Error).message)?.[1]),
    0,
  );
  assert.equal(
    reported,
    ahead.health.droppedUpdates,
    'each drop reported (once a second, not once per update)',
  );
  assert.equal(store.queries.totals().events, 1, 'the event row itself is stored');
});

test('past maxHeldUpdates the oldest APPLIED results are dropped before any session, action or policy row', (t) => {
  const { path, store, errors } = open();
  // No timer hands over or retries during the test: `flush` and `close` do.
  const ahead = new WriteAhead(store, {
    thread: false,
    flushMs: 60_000,
    checkMs: 60_000,
    maxHeldUpdates: 20,
    onError: (_op, err) => errors.push(err),
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const s = session('vm-d', 7n);
  for (let seq = 1; seq <= 10; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  const release = lockDatabase(t, path);
  ahead.flush();
  assert.equal(ahead.health.healthy, false, 'the segment with the ten rows failed to commit');
  // Ten results first (the oldest), then fifteen sessions, an action and a policy: 27 for 20 places.
  for (let seq = 1; seq <= 10; seq++) store.markApplied(7n, seq, -seq);
  for (let i = 0; i < 15; i++) store.sessionOpened(session('vm-d', BigInt(20 + i)));
  const kill = store.recordAction({
    vm: 'vm-d',
    action: 'kill',
    rule: 'r',
    outcome: 'requested',
    event: null,
  });
  store.recordPolicy('v1', 'fleet', 'rules: []');
  assert.deepEqual([ahead.health.heldUpdates, ahead.health.droppedUpdates], [20, 7]);
  release();
  ahead.close();
  const applied = store.db.prepare('SELECT seq, applied FROM events ORDER BY seq').all();
  assert.deepEqual(
    applied.map((r) => Object.values(r as object)),
    Array.from({ length: 10 }, (_, i) => [i + 1, i < 7 ? null : -(i + 1)]),
    'the seven oldest results dropped, the three newest stored',
  );
  assert.equal(store.db.prepare('SELECT COUNT(*) FROM sessions').pluck().get(), 15);
  assert.equal(store.db.prepare('SELECT id FROM actions').pluck().get(), kill[1]);
  assert.equal(store.db.prepare('SELECT COUNT(*) FROM policies').pluck().get(), 1);
  assert.equal(droppedReports(errors).length, 1, 'reported at close, in one line');
  assert.match(
    (droppedReports(errors)[0] as Error).message,
    /^7 held updates dropped past the 20-update bound/,
  );
});
