/**
 * The store's reader thread runs at a higher nice value than the verdict path, and the writer
 * thread — which the verdict path may wait for — does not (store/thread-priority.ts): seen in
 * /proc, per thread, while a real writer and a real reader thread run.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { after, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { EventRecord } from '../../events/index.js';
import {
  idleFacts,
  mayLeaveIdle,
  SCHED_IDLE,
  SCHED_OTHER,
  statFields,
  threadPolicy,
} from '../../kvm/index.js';
import {
  EventStore,
  HELPER_THREAD_NICE,
  StoreReader,
  WriteAhead,
  type WriteAheadOptions,
} from '../../store/index.js';
import { exitOf, killOwned, runFile, spawnOwned } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { until, within } from '../helpers/wait.js';
import { record, session, tempStorePath } from './records.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Nice value of every thread of this process, by thread id (field 19 of /proc/<tid>/stat). */
function niceByThread(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.set(Number(tid), Number(statFields(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

test('the reader thread runs at the helper nice value; the writer and the event loop keep their own', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const own = niceByThread().get(process.pid);
  assert.notEqual(own, HELPER_THREAD_NICE, 'this test needs the process below the helper nice value');
  const before = [...niceByThread().values()].filter((n) => n === HELPER_THREAD_NICE).length;
  const store = new EventStore({ path });
  const ahead = new WriteAhead(store);
  const reader = new StoreReader(store, ahead);
  try {
    ahead.record([record({ session: session('vm-a'), seq: 1, timeMs: Date.now() })]);
    await until('the writer thread to commit the row', () => ahead.pending === 0);
    assert.equal((await reader.events({})).length, 1, 'the reader thread answered');
    const niced = [...niceByThread().values()].filter((n) => n === HELPER_THREAD_NICE).length;
    assert.equal(niced - before, 1, 'the reader thread took the helper nice value, the writer did not');
    assert.equal(niceByThread().get(process.pid), own, 'the main thread kept its nice value');
  } finally {
    reader.close();
    ahead.close();
    store.close();
  }
});

/** Threads of this process in `policy` (field 41 of /proc/self/task/<tid>/stat). */
function threadsIn(policy: number): number[] {
  return readdirSync('/proc/self/task')
    .map(Number)
    .filter((tid) => threadPolicy(tid) === policy);
}

test('the writer thread waits in SCHED_IDLE once it has caught up; no other thread does', async (t) => {
  if (!mayLeaveIdle(idleFacts())) return t.skip('this process may not leave SCHED_IDLE');
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  const ahead = new WriteAhead(store);
  t.after(() => {
    ahead.close();
    store.close();
  });
  // Writer threads of the tests before this one may not have ended yet.
  const before = new Set(threadsIn(SCHED_IDLE));
  const idleNow = () => threadsIn(SCHED_IDLE).filter((tid) => !before.has(tid));
  ahead.record([record({ session: session('vm-a'), seq: 1, timeMs: Date.now() })]);
  await until('the writer thread to commit the row', () => ahead.pending === 0);
  const idle = idleNow();
  assert.equal(idle.length, 1, 'one thread, the writer, is in SCHED_IDLE');
  assert.notEqual(idle[0], process.pid, 'not the event loop');
  const offStore = new EventStore({ path: `${path}-2` });
  const off = new WriteAhead(offStore, { idleWriter: false });
  t.after(() => {
    off.close();
    offStore.close();
  });
  off.record([record({ session: session('vm-a'), seq: 1, timeMs: Date.now() })]);
  await until('the second writer thread to commit the row', () => off.pending === 0);
  assert.deepEqual(idleNow(), idle, 'idleWriter: false keeps its writer thread normal');
});

/** A store whose writer thread has committed one row and gone idle; its thread id. */
async function idleWriter(
  t: TestContext,
  opts: WriteAheadOptions,
): Promise<{ ahead: WriteAhead; tid: number }> {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  const ahead = new WriteAhead(store, opts);
  t.after(() => {
    ahead.close();
    store.close();
  });
  ahead.record([record({ session: session('vm-a'), seq: 0, timeMs: Date.now() })]);
  const before = new Set(threadsIn(SCHED_IDLE));
  await until('the writer thread to commit the first row', () => ahead.pending === 0);
  const [tid] = threadsIn(SCHED_IDLE).filter((id) => !before.has(id));
  assert.ok(tid !== undefined && ahead.writerIdle, 'the writer thread is idle');
  return { ahead, tid };
}

/** 20,000 rows of one VM (~0.3 s of the writer thread's CPU). */
function storm(): EventRecord[] {
  const s = session('vm-a');
  const now = Date.now();
  return Array.from({ length: 20_000 }, (_, i) => record({ session: s, seq: i + 1, timeMs: now }));
}

// Each way out of SCHED_IDLE is tested alone: the options rule out the others. The policy is read
// from /proc before this thread can process an acknowledgement, so it is the one the event loop
// set, whatever the writer thread has done meanwhile.

test('an idle writer is moved back at once when an eighth of maxInFlight waits on it', async (t) => {
  if (!mayLeaveIdle(idleFacts())) return t.skip('this process may not leave SCHED_IDLE');
  // No periodic check, no age: only the mark can move it.
  const { ahead, tid } = await idleWriter(t, {
    checkMs: 3_600_000,
    maxPending: 20_000,
    idleAgeMs: 3_600_000,
  });
  ahead.record(storm());
  assert.equal(threadPolicy(tid), SCHED_OTHER, 'moved back as the rows were handed over');
  await until('the writer thread to commit 20,000 rows', () => ahead.pending === 0);
  assert.equal(threadPolicy(tid), SCHED_IDLE, 'idle again once it had caught up');
  assert.equal(ahead.writerRaises, 1);
});

test('an idle writer is moved back while a read waits for it', async (t) => {
  if (!mayLeaveIdle(idleFacts())) return t.skip('this process may not leave SCHED_IDLE');
  const opts = { checkMs: 3_600_000, maxPending: 20_000, maxInFlight: 1_000_000, idleAgeMs: 3_600_000 };
  const { ahead, tid } = await idleWriter(t, opts);
  ahead.record(storm());
  assert.equal(threadPolicy(tid), SCHED_IDLE, 'below the mark, with no age bound, it stays idle');
  const read = ahead.settle();
  assert.equal(threadPolicy(tid), SCHED_OTHER, 'moved back as the read began to wait');
  // within(): its timer keeps this process alive; the store's own handles do not.
  await within('the read to go ahead', read);
  assert.equal(ahead.pending, 0, 'every row was committed when the read went ahead');
});

/**
 * The case the age bound is for: rows handed over and no new ones, on a CPU that a busy loop at
 * nice 0 keeps busy. Pinned there, an idle writer gets a few per cent of it, so its 20,000 rows
 * take many times `idleAgeMs`; the periodic check must move it back. Only one CPU is kept busy,
 * so the test files running beside this one keep the others.
 */
test('an idle writer starved of CPU is moved back once a segment has waited idleAgeMs', async (t) => {
  if (!requireTool(t, 'taskset', 'util-linux')) return;
  if (!mayLeaveIdle(idleFacts())) return t.skip('this process may not leave SCHED_IDLE');
  // Below the mark (an eighth of a million), and no read: only the age check can move it.
  const opts = { checkMs: 100, maxPending: 20_000, maxInFlight: 1_000_000 };
  const { ahead, tid } = await idleWriter(t, opts);
  const cpu = String(availableParallelism() - 1);
  await runFile('taskset', ['-p', '-c', cpu, String(tid)]);
  const busy = spawnOwned('taskset', ['-c', cpu, process.execPath, '-e', 'for (;;);'], { stdio: 'ignore' });
  t.after(() => killOwned(busy, 'the busy loop'));
  ahead.record(storm());
  assert.equal(threadPolicy(tid), SCHED_IDLE, 'below the mark it stays idle at first');
  await until('the writer thread to commit 20,000 rows', () => ahead.pending === 0);
  assert.ok(ahead.writerRaises >= 1, 'the age check moved it back');
});

/**
 * At exit Node tears a worker down on the worker's own CPU time; an idle writer on a busy host got
 * seconds of it (6–8 s beside one busy loop on its CPU). A process that exits without closing the
 * store — a crash, process.exit — must move it back first. The child reports its writer's policy
 * from an exit listener added after the store's, so it sees what the store's listener left.
 */
const EXIT_PROBE = `
import { readdirSync } from 'node:fs';
import { SCHED_IDLE, threadPolicy } from ${JSON.stringify(fileURLToPath(new URL('../../kvm/index.ts', import.meta.url)))};
import { EventStore, WriteAhead } from ${JSON.stringify(fileURLToPath(new URL('../../store/index.ts', import.meta.url)))};
import { record, session } from ${JSON.stringify(fileURLToPath(new URL('./records.ts', import.meta.url)))};
const ahead = new WriteAhead(new EventStore({ path: process.argv[1] }));
ahead.record([record({ session: session('vm-a'), seq: 1, timeMs: Date.now() })]);
while (ahead.pending !== 0 || !ahead.writerIdle) await new Promise((r) => setTimeout(r, 10));
const [tid] = readdirSync('/proc/self/task').map(Number).filter((t) => threadPolicy(t) === SCHED_IDLE);
const before = threadPolicy(tid);
process.on('exit', () => console.log(JSON.stringify({ before, atExit: threadPolicy(tid) })));
process.exit(0);
`;

test('a process that exits without closing the store moves its idle writer back first', async (t) => {
  if (!mayLeaveIdle(idleFacts())) return t.skip('this process may not leave SCHED_IDLE');
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const child = spawnOwned(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', EXIT_PROBE, path],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => killOwned(child, 'the exit probe'));
  let out = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  assert.deepEqual(await within('the exit probe to exit', exitOf(child)), { code: 0, signal: null });
  assert.deepEqual(JSON.parse(out), { before: SCHED_IDLE, atExit: SCHED_OTHER });
});
