/**
 * The reader thread's handle: no thread outlives `close`, a running one never holds the process,
 * and an idle one ends.
 */
import assert from 'node:assert/strict';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { EventStore, isStoreError, StoreReader } from '../../store/index.js';
import { runTool } from '../daemon/e2e/run-cli.js';
import { until, within } from '../helpers/wait.js';
import { record, session, tempStorePath } from './records.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(): EventStore {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  return new EventStore({ path });
}

test('a read still waiting for the writer when the reader closes fails, and starts no thread', async (t) => {
  const store = open();
  let settled = () => {};
  const reader = new StoreReader(store, {
    settle: () => new Promise<void>((r) => (settled = r)),
    uncommittedFrom: null,
  });
  t.after(() => {
    reader.close();
    store.close();
  });
  store.append([record({ session: session('vm-a'), seq: 1, timeMs: 1_700_000_000_000 })]);
  // A control request in flight when the daemon stops: it waits for the write-ahead rows first.
  const read = reader.totals();
  reader.close();
  settled();
  await assert.rejects(read, (e: unknown) => isStoreError(e) && e.code === 'SEAWALL_STORE_CLOSED');
  assert.equal(reader.running, false, 'no thread was started after close');
  await assert.rejects(reader.totals(), (e: unknown) => isStoreError(e) && e.code === 'SEAWALL_STORE_CLOSED');
});

test('a read or a retention pass in progress holds the process; idle reader and retention threads never do', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const r = await runTool(process.execPath, [
    '--import',
    'tsx',
    new URL('./children/threads-left-running.ts', import.meta.url).pathname,
    path,
  ]);
  const out = r.stdout + r.stderr;
  // 13: a top-level await left pending when nothing held the process any more.
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, out);
  assert.match(out, /reader running: true/);
});

test('the reader thread ends once idle, and the next read starts another', async (t) => {
  const store = open();
  const reader = new StoreReader(store, undefined, 50);
  t.after(() => {
    reader.close();
    store.close();
  });
  store.append([record({ session: session('vm-a'), seq: 1, timeMs: 1_700_000_000_000 })]);
  assert.equal((await within('a read', reader.totals())).events, 1);
  await until('the idle reader thread to end', () => !reader.running);
  store.append([record({ session: session('vm-a'), seq: 2, timeMs: 1_700_000_000_001 })]);
  assert.equal((await within('a read from a new thread', reader.totals())).events, 2);
  assert.equal(reader.running, true);
});

test("a reader that cannot open the store fails the read with SQLite's reason", async (t) => {
  const store = open();
  const reader = new StoreReader(store);
  t.after(() => {
    reader.close();
    store.close();
  });
  // The file replaced by one that is not a database, its write-ahead log and index gone with it
  // (their pages would be read first): the thread's open throws, uncaught, and its SqliteError
  // reaches this thread as `{ code }` alone.
  writeFileSync(`${store.path}.garbage`, 'x'.repeat(8192));
  renameSync(`${store.path}.garbage`, store.path);
  rmSync(`${store.path}-wal`, { force: true });
  rmSync(`${store.path}-shm`, { force: true });
  await assert.rejects(
    within('the read', reader.totals()),
    (e: unknown) =>
      isStoreError(e) && e.code === 'SEAWALL_STORE_READER' && /not a database|SQLITE_NOTADB/.test(e.message),
  );
});
