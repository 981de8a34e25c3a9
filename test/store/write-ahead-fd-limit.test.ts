/**
 * The write-ahead layer at the process's open-file limit, as a daemon with too many VMs connected
 * can be. A file of its own: every descriptor of the process is taken here, and a test file runs
 * in a process of its own, so that no thread or handle another test left competes for the ones
 * freed. The limit itself is the kernel's (RLIMIT_NOFILE, lowered with prlimit(1)).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore, WriteAhead } from '../../store/index.js';
import { Descriptors, setSoftLimit, softLimit } from '../helpers/descriptors.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';
import { record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(): { dir: string; path: string; store: EventStore } {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  return { dir, path, store: new EventStore({ path }) };
}

const segmentsIn = (dir: string) => readdirSync(dir).filter((n) => /\.pending\.\d+$/.test(n));

/** The descriptor this process has open on `path`. */
function descriptorOf(path: string): number {
  const fd = readdirSync('/proc/self/fd')
    .map(Number)
    .find((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`) === path;
      } catch {
        return false; // the directory's own descriptor, closed by now
      }
    });
  assert.ok(fd !== undefined, `no descriptor on ${path}`);
  return fd;
}

test('a rotation whose new append file cannot be opened keeps its rows pending, and never closes a descriptor twice', async (t) => {
  const prlimit = requireTool(t, 'prlimit', 'util-linux');
  if (!prlimit) return;
  const { dir, path, store } = open();
  const health: boolean[] = [];
  const errors: NodeJS.ErrnoException[] = [];
  const limit = softLimit();
  const fds = new Descriptors();
  // Below the append file's number, released before prlimit runs to raise the limit again.
  fds.take(16);
  // On the event loop: no writer thread that could take a descriptor freed here.
  const ahead = new WriteAhead(store, {
    thread: false,
    flushMs: 5,
    maxPending: 5,
    checkMs: 50,
    onError: (_op, err) => errors.push(err as NodeJS.ErrnoException),
    onHealth: (h) => health.push(h.healthy),
  });
  t.after(() => {
    fds.release();
    setSoftLimit(prlimit, limit);
    ahead.close();
    store.close();
  });
  // A limit at the append file's own number, every number below it taken: the rotation closes the
  // file and cannot open the next one — the same EMFILE another thread causes by taking the number
  // in between, here on every run.
  const appendFd = descriptorOf(`${path}.pending`);
  setSoftLimit(prlimit, appendFd);
  fds.takeAll();
  const s = session('vm-f', 1n);
  for (let seq = 1; seq <= 5; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  // The rows are in the segment on disk: pending, not held as if only memory had them.
  assert.equal(ahead.pending, 5);
  assert.equal(ahead.health.heldRows, 0);
  assert.ok(existsSync(`${path}.pending.1`), 'the segment is on disk');
  assert.deepEqual(health, [false], 'the store is faulty');
  assert.deepEqual(
    errors.map((e) => [e.code, e.path]),
    [
      ['EMFILE', `${path}.pending`],
      ['EMFILE', `${path}.pending.1`],
    ],
    'the new file could not be opened, nor the segment read back',
  );
  ahead.record([record({ session: s, seq: 6, timeMs: T0 + 6 })]);
  assert.equal(ahead.health.heldRows, 1, 'an event answered while faulty is held');

  // The limit back, and the closed append file's number taken by someone else before the retry:
  // a retry that closed it again would close this descriptor (and open the append file under it).
  fds.release();
  setSoftLimit(prlimit, limit);
  fds.takeUpTo(appendFd);
  await until('the retry to commit everything', () => ahead.health.healthy && ahead.pending === 0, {
    state: () => `health ${health.join(',')}, ${ahead.pending} pending, ${ahead.health.heldRows} held`,
  });
  assert.equal(readlinkSync(`/proc/self/fd/${appendFd}`), '/dev/null', 'the retry left it alone');
  fds.release();
  assert.deepEqual(health, [false, true], 'one fault, one recovery');
  assert.equal(ahead.health.heldRows, 0);
  assert.equal(store.queries.totals().events, 6);
  assert.deepEqual(segmentsIn(dir), []);
});

test('a writer thread that dies is replaced within a second; every segment posted to it is committed', async (t) => {
  const { path, store } = open();
  const health: boolean[] = [];
  const errors: NodeJS.ErrnoException[] = [];
  const fds = new Descriptors();
  const firstSegment = `${path}.pending.1`;
  let atDeath: { pending: number; held: number; running: boolean } | null = null;
  const ahead = new WriteAhead(store, {
    flushMs: 5,
    maxPending: 5,
    checkMs: 50,
    onError: (_op, err) => {
      errors.push(err as NodeJS.ErrnoException);
      if (atDeath !== null || (err as NodeJS.ErrnoException).path !== firstSegment) return;
      // The thread is dead and its first segment cannot be read back here either: the state under
      // test, seen as it is reached. The descriptors go back now, before the next retry: the
      // thread that retry starts then has every one it needs, and no rotation of the append file
      // ever runs while a thread starts without them.
      atDeath = { pending: ahead.pending, held: ahead.health.heldRows, running: ahead.writerRunning };
      fds.release();
    },
    onHealth: (h) => health.push(h.healthy),
  });
  t.after(() => {
    fds.release();
    ahead.close();
    store.close();
  });
  // Every descriptor taken: the thread cannot start (its event loop needs some), and what is
  // posted to it cannot be read back on this thread either.
  fds.takeAll();
  const s = session('vm-d', 1n);
  // The fifth row hands the file over and starts the thread. One hand-over of rows, not two: each
  // closes the append file and opens the next, and the thread starting beside the second could
  // take the number freed in between — that rotation would fail instead, and the thread, given a
  // descriptor, would die later, at a moment nothing here controls.
  for (let seq = 1; seq <= 5; seq++) ahead.record([record({ session: s, seq, timeMs: T0 + seq })]);
  // A second segment with no file to rotate: an APPLIED result for one of those rows, handed over
  // at once by a read. Both are posted before the thread can be known dead: that takes a turn of
  // the event loop.
  store.markApplied(1n, 3, -7);
  const read = ahead.settle();
  await until('the writer thread to die with its segments unread', () => atDeath, {
    state: () => errors.map((e) => e.message).join('; ') || 'no error yet',
  });
  assert.deepEqual(
    atDeath,
    { pending: 5, held: 0, running: false },
    'the rows posted to it are kept pending, not held',
  );
  await until('a new writer thread to commit both', () => ahead.health.healthy && ahead.pending === 0, {
    state: () =>
      `health ${health.join(',')}, ${ahead.pending} pending; errors: ${errors.map((e) => e.message).join('; ')}`,
  });
  // The read's wait ends with the first acknowledgement of the new thread (or its own deadline).
  await within('the read to return', read);
  assert.equal(ahead.writerRunning, true, 'a new writer thread took over');
  assert.deepEqual(health, [false, true], 'one fault, one recovery');
  // On the store's connection, before any read through the store, which would commit whatever
  // is still in flight on this thread.
  const applied = store.db.prepare('SELECT applied FROM events WHERE seq = 3').pluck().get();
  assert.equal(applied, -7, 'the APPLIED result was committed, after its row');
  assert.equal(store.queries.totals().events, 5);
});
