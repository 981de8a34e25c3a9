/**
 * The store's reader thread runs at a higher nice value than the verdict path, and the writer
 * thread — which the verdict path may wait for — does not (store/thread-priority.ts): seen in
 * /proc, per thread, while a real writer and a real reader thread run.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore, HELPER_THREAD_NICE, StoreReader, WriteAhead } from '../../store/index.js';
import { until } from '../helpers/wait.js';
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
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields after it start past the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), Number(fields[16]));
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
  const reader = new StoreReader(store, () => ahead.settle());
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
