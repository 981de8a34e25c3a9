/**
 * The writer thread when it cannot be had (store/write-ahead.ts `#startWriter`) or dies unseen
 * (`#replaceDeadWriter`): segments are committed on the event loop, nothing throws out of the
 * verdict path or a timer, and nothing answered waits for a thread that will never acknowledge it.
 * And when it has nothing to do (`#endIdleWriter`): it ends, and the next rows start another.
 *
 * A process or cgroup out of threads makes `new Worker` throw (EAGAIN) at once. The kernel refuses
 * that only below a thread limit root is not held to, so `worker_threads.Worker` is replaced for
 * it here, for the test's length. A thread that cannot open the store is real: the store's -shm
 * path is made a directory, which `openDatabase` refuses (store/connection.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, rmdirSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { type TestContext, test } from 'node:test';
import workerThreads from 'node:worker_threads';
import Database from 'better-sqlite3';
import { EventStore, WriteAhead } from '../../store/index.js';
import { until, WAIT_MS } from '../helpers/wait.js';
import { record, scratchStorePath, session } from './records.js';

const T0 = Date.UTC(2026, 11, 4, 16, 0, 0);
const s = session('vm-w', 7n);
const events = (...seqs: number[]) => seqs.map((seq) => record({ session: s, seq, timeMs: T0 + seq }));

function open(t: TestContext, checkMs: number, writerIdleMs?: number, flushMs = 3_600_000) {
  const path = scratchStorePath();
  const errors: string[] = [];
  const health: boolean[] = [];
  const onError = (_op: unknown, err: unknown) => errors.push((err as Error).message);
  const store = new EventStore({ path, onError });
  const ahead = new WriteAhead(store, {
    flushMs,
    checkMs,
    maxPending: 2,
    ...(writerIdleMs === undefined ? {} : { writerIdleMs }),
    onError,
    onHealth: (h) => health.push(h.healthy),
  });
  t.after(() => {
    ahead.close();
    store.close();
  });
  const stored = () => store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all();
  return { path, store, ahead, errors, health, stored };
}

/** `new Worker` throws as it does without a thread to be had, until the returned function is called. */
function refuseThreads(t: TestContext): { attempts: () => number; restore: () => void } {
  const Original = workerThreads.Worker;
  let attempts = 0;
  workerThreads.Worker = class {
    constructor() {
      attempts++;
      throw Object.assign(new Error('Worker initialization failure: EAGAIN'), {
        code: 'ERR_WORKER_INIT_FAILED',
      });
    }
  } as unknown as typeof Original;
  syncBuiltinESMExports();
  const restore = () => {
    workerThreads.Worker = Original;
    syncBuiltinESMExports();
  };
  t.after(restore);
  return { attempts: () => attempts, restore };
}

test('with no thread to be had, segments are committed on the event loop; no hand-over tries again before the next check', (t) => {
  const { ahead, errors, health, stored } = open(t, 3_600_000);
  const refused = refuseThreads(t);
  ahead.record(events(1, 2)); // maxPending: the hand-over, which would start the thread
  assert.equal(refused.attempts(), 1);
  assert.equal(ahead.pending, 0, 'committed on the event loop');
  assert.deepEqual(stored(), [1, 2]);
  assert.equal(errors.length, 1);
  assert.match(errors[0] as string, /no writer thread could be started, .*EAGAIN/);
  // Until the next check, no hand-over tries again (each would fail as dearly, and say so).
  ahead.record(events(3, 4));
  ahead.flush();
  assert.equal(refused.attempts(), 1);
  assert.deepEqual(stored(), [1, 2, 3, 4]);
  assert.deepEqual(health, [], 'the store stays healthy: every row is committed');
  refused.restore();
  ahead.close(); // close hands over too: it must not throw either
  assert.equal(ahead.pending, 0);
});

test('a check after the refusal lets the next hand-over start a thread', async (t) => {
  const { ahead, errors, stored } = open(t, 20);
  const refused = refuseThreads(t);
  ahead.record(events(1, 2));
  assert.equal(refused.attempts(), 1);
  refused.restore();
  let seq = 3;
  await until('a later hand-over to start a thread', () => {
    ahead.record(events(seq++, seq++));
    return ahead.writerRunning;
  });
  ahead.flush();
  assert.equal(stored().length, seq - 1);
  assert.equal(errors.length, 1, errors.join('; '));
});

test('a thread that could not open the store, replaced by the check before its message was read: what was posted to it is committed', async (t) => {
  const { path, ahead, errors, health, stored } = open(t, 20);
  const shm = `${path}-shm`;
  renameSync(shm, `${shm}.aside`);
  mkdirSync(shm);
  t.after(() => {
    rmdirSync(shm);
    renameSync(`${shm}.aside`, shm);
  });
  // In one timer callback, the event loop busy: the thread starts and fails, and the check falls
  // due. It runs next, in the same timers phase, before the thread's message is read.
  await new Promise<void>((resolve, reject) =>
    setTimeout(() => {
      ahead.record(events(1, 2)); // starts the thread, posts the segment
      const deadline = performance.now() + WAIT_MS;
      while (ahead.writerRunning)
        if (performance.now() > deadline) return reject(new Error('the thread never failed to open'));
      const due = performance.now() + 100;
      while (performance.now() < due);
      resolve();
    }, 0),
  );
  await until('the segment to be committed', () => ahead.pending === 0, {
    state: () => `${ahead.pending} pending, health ${health.join(',')}, errors ${errors.join('; ')}`,
  });
  assert.deepEqual(stored(), [1, 2]);
  assert.ok(
    errors.some((e) => /writer thread cannot open the store/.test(e)),
    `the thread's own reason is said: ${errors.join('; ')}`,
  );
  assert.deepEqual(health, [false, true], 'one fault, over once the segment is committed');
});

test('a writer thread with nothing posted for writerIdleMs ends; the next rows start another, numbered on', async (t) => {
  const { ahead, errors, health, stored } = open(t, 20, 50);
  ahead.record(events(1, 2)); // maxPending: the hand-over starts the thread
  assert.ok(ahead.writerRunning);
  await until('the thread to publish its id', () => ahead.writerThreadId !== null);
  const tid = ahead.writerThreadId;
  assert.ok(existsSync(`/proc/self/task/${tid}`));
  // It sleeps after a second with nothing posted; the next check then ends it.
  await until('the idle thread to be ended', () => ahead.writersEnded === 1);
  assert.equal(ahead.writerRunning, false);
  await until('its thread to exit', () => !existsSync(`/proc/self/task/${tid}`));
  assert.deepEqual(stored(), [1, 2], 'what it was given was committed before it went');
  ahead.record(events(3, 4));
  assert.ok(ahead.writerRunning, 'the next hand-over with rows starts another');
  ahead.record(events(5, 6));
  ahead.flush(); // waits for the new thread's acknowledgements: segment numbers went on
  assert.deepEqual(stored(), [1, 2, 3, 4, 5, 6]);
  assert.equal(ahead.pending, 0);
  assert.equal(ahead.writersEnded, 1, 'a thread given rows since is not ended');
  assert.deepEqual(errors, []);
  assert.deepEqual(health, []);
});

test('session rows with no writer thread: committed here with the lock free, by a new thread while another connection holds it', async (t) => {
  // Updates are handed over at the next flush: every 5 ms here.
  const { path, store, ahead, errors, health } = open(t, 20, 50, 5);
  const other = new Database(path);
  t.after(() => {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
  });
  const sessions = () => store.db.prepare('SELECT vm FROM sessions ORDER BY vm').pluck().all();
  const state = () => `${ahead.pending} pending, errors ${errors.join('; ')}`;
  ahead.record(events(1, 2));
  await until('the idle thread to be ended', () => ahead.writersEnded === 1, { state });

  store.sessionOpened(session('vm-a', 8n));
  await until('the session row committed', () => sessions().includes('vm-a'), { state });
  assert.equal(ahead.writerRunning, false, 'with the lock free, on the event loop: no thread started for it');

  // A retention slice or an operator's sqlite3 holds the write lock: the event loop does not wait.
  other.exec('BEGIN IMMEDIATE');
  store.sessionOpened(session('vm-b', 9n));
  await until('the hand-over', () => ahead.writerRunning || errors.length > 0, { state });
  assert.deepEqual(errors, [], 'nothing failed on the event loop');
  other.exec('ROLLBACK');
  await until('the thread to commit it once the lock is let go', () => sessions().includes('vm-b'), {
    state,
  });
  assert.deepEqual(errors, []);
  assert.deepEqual(health, [], 'no fault');
});
