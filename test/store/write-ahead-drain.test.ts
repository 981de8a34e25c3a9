/**
 * The event loop takes over segments the writer thread has not acknowledged in time
 * (store/write-ahead.ts `#drain`), while the thread, slow rather than stalled, may still be
 * committing them. Both then read the same file; only one can set a damaged one aside. Whichever
 * does, the damage is told once — by the thread's acknowledgement when the thread got there first
 * — and no fault is made of the file the other found gone.
 *
 * The thread is held up by another connection holding the write lock (a real SQLite lock); the
 * order of the two readers within the microseconds that decide it is not something a test can get
 * from the kernel, so `fs.openSync` and `fs.renameSync` are patched on the event loop's side, for
 * the segment only, to let the thread go first.
 */
import assert from 'node:assert/strict';
import fs, { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { dirname } from 'node:path';
import { type TestContext, test } from 'node:test';
import { EventStore, isStoreError, WriteAhead } from '../../store/index.js';
import { segmentPath } from '../../store/segments.js';
import { lockDatabase, record, scratchStorePath, session } from './records.js';

const T0 = Date.UTC(2026, 11, 4, 2, 0, 0);
const s = session('vm-d', 4n);
const events = (...seqs: number[]) => seqs.map((seq) => record({ session: s, seq, timeMs: T0 + seq }));

/** A record the store cannot read: the record mark, a body of one byte (an unknown tag), its newline. */
const UNREADABLE = Buffer.from([0xb1, 1, 0, 0, 0, 0x7f, 0x0a]);

/** Blocks this thread until `done()` or `ms` have passed (the writer thread runs meanwhile). */
function blockUntil(done: () => boolean, ms: number): void {
  const deadline = Date.now() + ms;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not done within ${ms} ms`);
    Atomics.wait(cell, 0, 0, 5);
  }
}

/**
 * On the event loop's side, for `file` only: `openSync` lets the lock go (`release`), after opening
 * the file when `readFirst`, else once the writer thread has set the file aside; `renameSync`
 * waits until the thread has.
 */
function letThreadGoFirst(t: TestContext, file: string, release: () => void, readFirst: boolean): void {
  const { openSync, renameSync } = fs;
  const gone = () => !existsSync(file);
  Object.assign(fs, {
    openSync: (path: fs.PathLike, ...rest: unknown[]) => {
      if (path !== file) return (openSync as (...a: unknown[]) => number)(path, ...rest);
      const fd = readFirst ? (openSync as (...a: unknown[]) => number)(path, ...rest) : null;
      release();
      if (fd !== null) return fd;
      blockUntil(gone, 10_000);
      return (openSync as (...a: unknown[]) => number)(path, ...rest);
    },
    renameSync: (from: fs.PathLike, to: fs.PathLike) => {
      if (from === file) blockUntil(gone, 10_000);
      renameSync(from, to);
    },
  });
  syncBuiltinESMExports();
  t.after(() => {
    Object.assign(fs, { openSync, renameSync });
    syncBuiltinESMExports();
  });
}

for (const readFirst of [false, true])
  test(`a damaged segment the thread sets aside first is told once, by the thread (event loop ${readFirst ? 'read it too' : 'found it gone'})`, (t) => {
    const path = scratchStorePath();
    const errors: unknown[] = [];
    const onError = (_op: unknown, err: unknown) => errors.push(err);
    const store = new EventStore({ path, onError });
    // The event loop gives up on the thread after 300 ms; the thread waits 2 s for the lock.
    const ahead = new WriteAhead(store, { flushMs: 3_600_000, waitMs: 300, onError });
    const release = lockDatabase(t, path);
    t.after(() => {
      ahead.close();
      store.close();
    });
    ahead.record(events(1, 2));
    appendFileSync(`${path}.pending`, UNREADABLE);
    ahead.record(events(3));
    letThreadGoFirst(t, segmentPath(`${path}.pending`, 1), release, readFirst);
    ahead.flush();

    assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2, 3]);
    const lost = errors.filter((e) => isStoreError(e, 'SEAWALL_STORE_LOST'));
    assert.equal(lost.length, 1, `the damage told once: ${errors.join('; ')}`);
    assert.match(String(lost[0]), /^StoreError: 0 answered events lost: .*: 1 of its records are not rows/);
    assert.equal(errors.length, 1, `no fault besides: ${errors.join('; ')}`);
    assert.equal(ahead.health.healthy, true);
    const aside = readdirSync(dirname(path)).filter((n) => n.includes('set-aside'));
    assert.equal(aside.length, 1, 'the file is kept aside for the operator');
  });
