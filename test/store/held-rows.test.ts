/**
 * The replay keys of rows not yet committed (store/held-rows.ts `PendingKeys`): a replay matches a
 * pending row only on its VM, seq and exit time together; a seq reused with another time is
 * another event; a key pending twice stays pending until it is forgotten twice. And the rows held
 * through a fault (`HeldRows`): copied to a file a kill -9 leaves for the next start.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type TestContext, test } from 'node:test';
import type { SessionInfo } from '../../events/index.js';
import { PendingKeys } from '../../store/held-rows.js';
import { until } from '../helpers/wait.js';
import { lockedWriteAhead, record, session, startAfterKill } from './records.js';

const T1 = 0x18a0000000000001n;
const T2 = 0x18a0000000000002n;
const key = (vm: string, seq: number, time: bigint) => ({ vm, seq, time });

test('a key is pending on its VM, seq and time together', () => {
  const keys = new PendingKeys();
  keys.add(key('vm-a', 7, T1));
  assert.equal(keys.has(key('vm-a', 7, T1)), true);
  assert.equal(keys.has(key('vm-a', 7, T2)), false, 'the seq reused, another exit');
  assert.equal(keys.has(key('vm-a', 8, T1)), false, 'another seq');
  assert.equal(keys.has(key('vm-b', 7, T1)), false, 'another VM');
});

test('a seq pending under several times keeps each until it is forgotten', () => {
  const keys = new PendingKeys();
  keys.add(key('vm-a', 7, T1));
  keys.add(key('vm-a', 7, T2));
  assert.equal(keys.has(key('vm-a', 7, T1)), true);
  assert.equal(keys.has(key('vm-a', 7, T2)), true);
  keys.forget([key('vm-a', 7, T1)]);
  assert.equal(keys.has(key('vm-a', 7, T1)), false);
  assert.equal(keys.has(key('vm-a', 7, T2)), true);
  keys.forget([key('vm-a', 7, T2)]);
  assert.equal(keys.has(key('vm-a', 7, T2)), false);
});

test('a key pending twice is forgotten one at a time; unknown keys change nothing', () => {
  for (const other of [T2, null]) {
    const keys = new PendingKeys();
    // With another time under the seq its times are a list; alone, a single time.
    if (other) keys.add(key('vm-a', 7, other));
    keys.add(key('vm-a', 7, T1));
    keys.add(key('vm-a', 7, T1));
    keys.forget([key('vm-a', 7, T1), key('vm-a', 9, T1), key('vm-z', 7, T1)]);
    assert.equal(keys.has(key('vm-a', 7, T1)), true, `still pending once (other time: ${other})`);
    keys.forget([key('vm-a', 7, T1)]);
    assert.equal(keys.has(key('vm-a', 7, T1)), false);
    // Forgotten more often than added: nothing below zero, the key can be pending again.
    keys.forget([key('vm-a', 7, T1)]);
    keys.add(key('vm-a', 7, T1));
    assert.equal(keys.has(key('vm-a', 7, T1)), true);
  }
});

test('size counts each key as often as it is pending', () => {
  const keys = new PendingKeys();
  keys.add(key('vm-a', 7, T1));
  keys.add(key('vm-a', 7, T1));
  keys.add(key('vm-a', 7, T2));
  keys.add(key('vm-b', 1, T1));
  assert.equal(keys.size, 4);
  keys.forget([key('vm-a', 7, T1), key('vm-z', 7, T1), key('vm-b', 1, T2)]);
  assert.equal(keys.size, 3, 'unknown keys count for nothing');
  keys.forget([key('vm-a', 7, T1), key('vm-a', 7, T1), key('vm-a', 7, T2), key('vm-b', 1, T1)]);
  assert.equal(keys.size, 0, 'never below zero');
});

/**
 * A store of boot 'before' whose first commit, of events `seqs` of `s`, failed on a lock another
 * connection holds: a fault, until `release`.
 */
function faulty(t: TestContext, s: SessionInfo, seqs: number[]) {
  const { path, store, ahead, release } = lockedWriteAhead(t);
  ahead.record(seqs.map((seq) => record({ session: s, seq, timeMs: 1000 + seq })));
  ahead.flush(); // the commit fails on the lock: a fault
  assert.equal(ahead.health.healthy, false);
  return { path, store, ahead, release };
}

test('rows held through a fault survive a kill in their copy; it goes once they are written ahead', async (t) => {
  const s = session('vm-h', 3n);
  const { path, store, ahead, release } = faulty(t, s, [1, 2]);
  ahead.record([3, 4, 5].map((seq) => record({ session: s, seq, timeMs: 1000 + seq })));
  assert.equal(ahead.health.heldRows, 3, 'answered through the fault: held');
  assert.ok(existsSync(`${path}.pending.held`), 'and copied');
  // A kill now: the next start finds 1 and 2 in their segment, 3 to 5 in the copy.
  const next = startAfterKill(path);
  const seqs = next.db.prepare("SELECT seq FROM events WHERE boot_id = 'before' ORDER BY seq").pluck();
  assert.deepEqual(seqs.all(), [1, 2, 3, 4, 5]);
  assert.equal(existsSync(`${next.path}.pending.held`), false, 'the copy is removed once recovered');
  next.close();
  release();
  await until('the fault to clear', () => ahead.health.healthy);
  assert.equal(existsSync(`${path}.pending.held`), false, 'the copy goes once the rows are written ahead');
  ahead.flush();
  const stored = store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck();
  assert.deepEqual(stored.all(), [1, 2, 3, 4, 5]);
});

test('session, action and result records received through a fault survive a kill in the copy too', async (t) => {
  const s = session('vm-u', 4n);
  const { path, store, ahead, release } = faulty(t, s, [1]);
  // No row comes with them: only the copy keeps them.
  store.sessionOpened(s);
  store.markApplied(4n, 1, -5);
  store.recordAction({ vm: 'vm-u', action: 'kill', rule: 'r', outcome: 'requested' });
  assert.equal(ahead.health.heldRows, 0);
  // A kill now: the next start stores them from the copy.
  const next = startAfterKill(path);
  const one = (sql: string) => next.db.prepare(sql).raw().get();
  assert.deepEqual(one("SELECT vm, outcome FROM sessions WHERE boot_id = 'before'"), ['vm-u', 'disconnect']);
  assert.deepEqual(one('SELECT seq, applied FROM events'), [1, -5]);
  assert.deepEqual(one('SELECT vm, action, outcome FROM actions'), ['vm-u', 'kill', 'requested']);
  assert.equal(existsSync(`${next.path}.pending.held`), false, 'the copy is removed once recovered');
  next.close();
  release();
  await until('the fault to clear', () => ahead.health.healthy);
  assert.equal(existsSync(`${path}.pending.held`), false, 'the copy goes once they are written ahead');
  ahead.flush();
  assert.deepEqual(store.db.prepare('SELECT seq, applied FROM events').raw().get(), [1, -5]);
  assert.equal(store.db.prepare('SELECT COUNT(*) FROM sessions').pluck().get(), 1);
});

test('a replay of a row held through a fault is recognised while held, written ahead again and stored', async (t) => {
  const s = session('vm-p', 5n);
  const { store, ahead, release } = faulty(t, s, [1, 2]);
  ahead.record([record({ session: s, seq: 3, timeMs: 1003 })]);
  assert.equal(ahead.health.heldRows, 1);
  // Reported again by the plugin under a new session, as after a daemon crash.
  const replay = (seq: number, sessionId: bigint) => {
    const r = record({ session: session('vm-p', sessionId), seq, timeMs: 1000 + seq, replay: true });
    ahead.record([r]);
    return r.duplicate;
  };
  assert.equal(replay(3, 6n), true, 'held');
  assert.equal(replay(1, 7n), true, 'in the segment whose commit failed');
  release();
  await until('the fault to clear', () => ahead.health.healthy);
  assert.equal(ahead.health.heldRows, 0);
  assert.equal(replay(3, 8n), true, 'written ahead again');
  ahead.flush();
  assert.equal(ahead.pending, 0);
  assert.equal(replay(3, 9n), true, 'stored');
  assert.equal(replay(4, 10n), false, 'an event never seen is stored as a replay');
  ahead.flush();
  assert.deepEqual(store.db.prepare('SELECT seq, replay FROM events ORDER BY seq').raw().all(), [
    [1, 0],
    [2, 0],
    [3, 0],
    [4, 1],
  ]);
});

for (const thread of [false, true])
  test(`rows dropped past maxHeld that the copy holds are stored from it when the fault clears (${thread ? 'writer thread' : 'on the event loop'})`, async (t) => {
    const { path, store, ahead, errors, recovered } = lockedWriteAhead(t, { thread, maxHeld: 10 });
    const s = session('vm-d', 6n);
    ahead.record([record({ session: s, seq: 100, timeMs: 1100 })]);
    ahead.flush(); // the commit fails on the lock: a fault
    assert.equal(ahead.health.healthy, false);
    // 30 answered through the fault: the copy keeps the first 10, memory the last 10.
    for (let seq = 1; seq <= 30; seq++) ahead.record([record({ session: s, seq, timeMs: 1000 + seq })]);
    assert.equal(ahead.health.heldRows, 20, 'held: the 10 in memory and the 10 only the copy keeps');
    assert.equal(ahead.health.droppedRows, 10, 'only those neither in memory nor in the copy are lost');
    assert.ok(errors.some((e) => /held events dropped past the 10-event bound/.test(e)));
    await recovered();
    assert.equal(existsSync(`${path}.pending.held`), false, 'the copy is gone once its rows are stored');
    const seqs = store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all();
    const want = [
      ...Array.from({ length: 10 }, (_, i) => i + 1),
      ...Array.from({ length: 10 }, (_, i) => i + 21),
      100,
    ];
    assert.deepEqual(seqs, want, 'the copy’s and memory’s rows, each stored once');
    assert.equal(ahead.health.droppedRows, 10);
    assert.equal(ahead.health.heldRows, 0);
  });
