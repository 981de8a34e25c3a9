/**
 * A write the disk cuts short is cut off again (store/segments.ts `appendWhole`); when even that
 * fails, the torn bytes stay, and nothing appended after them may be lost with them: the pending
 * file is cut back before rows held through the fault follow (store/write-ahead.ts), and the copy of
 * held rows starts each opening with a newline of its own (store/held-rows.ts).
 *
 * Torn update lines are cut off before rows follow them, the store healthy or not: left there, they
 * would swallow the first record up to its newline, and with the strings it defines every record
 * after it.
 *
 * A short write is what a full disk gives (test/store/segments.test.ts makes one on a small
 * tmpfs); a cut that fails after it is not something a test can make a kernel do, so `fs` is
 * patched for it here, for the named file only.
 */
import assert from 'node:assert/strict';
import fs, { readdirSync, readlinkSync, statSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { dirname } from 'node:path';
import { type TestContext, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { until } from '../helpers/wait.js';
import { record, scratchStorePath, session, startAfterKill } from './records.js';

/** How the patched `fs` treats writes to one file: torn once (cut fails), or refused every time. */
interface Faults {
  /** The next write to it writes this many bytes and says so; the cut after it fails with EIO. */
  tearNext?: number;
  /** How many cuts after the torn write fail (1 unless said): the later ones are the store's own. */
  failCuts?: number;
  /** Every write to it fails with ENOSPC. */
  full?: boolean;
}

const original = { writeSync: fs.writeSync, ftruncateSync: fs.ftruncateSync };

/**
 * Patches `fs.writeSync` and `fs.ftruncateSync` (and the `node:fs` bindings the store imported)
 * for the file at `file`, until the test ends; returns the faults to steer.
 */
function patchWrites(t: TestContext, file: string, faults: Faults): Faults {
  const { writeSync, ftruncateSync } = fs;
  const named = (fd: number) => readlinkSync(`/proc/self/fd/${fd}`) === file;
  let cutFails = 0;
  Object.assign(fs, {
    writeSync: (fd: number, data: Buffer | string, ...rest: unknown[]) => {
      if (!named(fd)) return (writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
      if (faults.full) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      const n = faults.tearNext;
      if (n === undefined) return (writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
      faults.tearNext = undefined;
      cutFails = faults.failCuts ?? 1;
      return writeSync(fd, Buffer.from(data).subarray(0, n));
    },
    ftruncateSync: (fd: number, len?: number) => {
      if (cutFails > 0 && named(fd)) {
        cutFails--;
        throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' });
      }
      ftruncateSync(fd, len);
    },
  });
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, original);
    syncBuiltinESMExports();
  });
  return faults;
}

const T0 = Date.UTC(2026, 11, 3, 22, 0, 0);
const s = session('vm-t', 6n);
const events = (...seqs: number[]) => seqs.map((seq) => record({ session: s, seq, timeMs: T0 + seq }));

const setAside = (path: string) => readdirSync(dirname(path)).filter((n) => n.includes('set-aside'));

/** A store of boot 'before' and its write-ahead layer, no thread, retried every 20 ms, no hand-over but the test's own. */
function storeWithoutThread(t: TestContext) {
  const path = scratchStorePath();
  const errors: unknown[] = [];
  const onError = (_op: unknown, err: unknown) => errors.push(err);
  const store = new EventStore({ path, bootId: 'before', onError });
  const ahead = new WriteAhead(store, { thread: false, flushMs: 3_600_000, checkMs: 20, onError });
  t.after(() => {
    ahead.close();
    store.close();
  });
  return { path, store, ahead, errors };
}

test('a torn batch that cannot be cut off is cut back before the rows held through the fault follow it', async (t) => {
  // Handed over through the fault, the file becomes a segment that ends in the torn bytes, and
  // they are read as a killed daemon's torn last record is: not damage.
  for (const handOverInFault of [false, true]) {
    const { path, store, ahead, errors } = storeWithoutThread(t);
    ahead.record(events(1, 2));
    const whole = statSync(`${path}.pending`).size;
    const faults = patchWrites(t, `${path}.pending`, { tearNext: 7 });
    ahead.record(events(3, 4));
    assert.equal(ahead.health.healthy, false, 'the short write is a fault');
    assert.equal(ahead.health.heldRows, 2);
    assert.equal(statSync(`${path}.pending`).size, whole + 7, 'the torn bytes are in the file');
    assert.match(String(errors[0]), /7 of \d+ bytes, and the 7 bytes written could not be cut off/);
    assert.equal(faults.tearNext, undefined);
    if (handOverInFault) {
      ahead.flush();
      assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2]);
    }
    // The retry writes the held rows ahead and hands the file over, which commits it here.
    await until('the retry to write the held rows ahead', () => ahead.health.healthy);
    ahead.record(events(5));
    ahead.flush();
    const seqs = store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all();
    assert.deepEqual(seqs, [1, 2, 3, 4, 5], `handed over in the fault: ${handOverInFault}`);
    assert.equal(errors.length, 1, `only the short write is reported: ${errors.join('; ')}`);
    assert.deepEqual(setAside(path), []);
  }
});

test('a torn line in the copy of held rows that cannot be cut off costs the rows held after it nothing', async (t) => {
  const { path, store, ahead, errors } = storeWithoutThread(t);
  // The pending file refuses every write (a full disk); the copy's first write is torn.
  const pending = patchWrites(t, `${path}.pending`, { full: true });
  const copy = patchWrites(t, `${path}.pending.held`, { tearNext: 9 });
  ahead.record(events(1));
  assert.equal(ahead.health.heldRows, 1);
  assert.equal(copy.tearNext, undefined, 'its copy was torn');
  // A retry reopens the copy (and fails to write the held row ahead again).
  const failed = errors.length;
  await until('a retry to fail', () => errors.length > failed);
  ahead.record(events(2));
  assert.equal(ahead.health.heldRows, 2);
  // A kill now: the torn line is lost with the row it began; the row after it is not.
  const startErrors: unknown[] = [];
  const next = startAfterKill(path, (_op, err) => startErrors.push(err));
  assert.deepEqual(next.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [2]);
  next.close();
  assert.deepEqual(startErrors, [], "a torn line is skipped as a killed daemon's is");
  pending.full = false;
  await until('the fault to clear', () => ahead.health.healthy);
  ahead.flush();
  assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2]);
});

test('torn update lines that cannot be cut off are cut before the rows after them are written', async (t) => {
  // failCuts 2: the cut before the rows fails too, a fault that holds them until its retry cuts.
  for (const failCuts of [1, 2]) {
    const { path, store, ahead, errors } = storeWithoutThread(t);
    store.sessionOpened(s); // an update line, and no row in the file
    const faults = patchWrites(t, `${path}.pending`, { tearNext: 5, failCuts });
    ahead.flush(); // the hand-over writes the line ahead: torn, not cut off, the file not handed over
    assert.equal(faults.tearNext, undefined, 'the line was torn');
    assert.equal(ahead.health.healthy, true, 'the updates are in memory: no fault');
    ahead.record(events(1, 2));
    ahead.record(events(3));
    assert.equal(ahead.health.healthy, failCuts === 1, `failCuts ${failCuts}`);
    // A kill now: every answered row is found, in the pending file or in the copy of held rows.
    const startErrors: unknown[] = [];
    const next = startAfterKill(path, (_op, err) => startErrors.push(err));
    assert.deepEqual(next.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2, 3]);
    next.close();
    assert.deepEqual(startErrors, []);
    await until('the store to be healthy', () => ahead.health.healthy);
    ahead.flush();
    assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2, 3]);
    assert.equal(errors.length, failCuts, `the torn write, and the failed cut: ${errors.join('; ')}`);
    assert.deepEqual(setAside(path), []);
  }
});
