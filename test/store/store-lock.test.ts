/** One daemon per store: flock(2) on <store>.lock, refused while held, released with its process. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { isStoreError, StoreLock } from '../../store/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { nextEvent, within } from '../helpers/wait.js';
import { tempStorePath } from './records.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function lockedBy(pid: number) {
  return (e: unknown) =>
    isStoreError(e) &&
    e.code === 'SEAWALL_STORE_LOCKED' &&
    e.message.includes(`(pid ${pid})`) &&
    (e.detail as { pid: number }).pid === pid;
}

test('a second lock on the same store is refused, naming the holder, until the first is released', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const first = StoreLock.take(path);
  assert.throws(() => StoreLock.take(path), lockedBy(process.pid));
  first.release();
  first.release();
  StoreLock.take(path).release();
});

test('renew: the same file stays locked; a directory made again is locked again, unless another took it', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const lock = StoreLock.take(path);
  lock.renew();
  assert.throws(() => StoreLock.take(path), lockedBy(process.pid), 'still held after renewing in place');
  // The state directory removed and made again, as the store's reopen does.
  rmSync(dir, { recursive: true });
  mkdirSync(dir, { mode: 0o700 });
  lock.renew();
  assert.equal(readFileSync(lock.path, 'utf8'), `${process.pid}\n`);
  assert.throws(() => StoreLock.take(path), lockedBy(process.pid), 'the new file is held');
  // Removed again, and another took the new file first: renewing refuses (the store stays faulty).
  rmSync(dir, { recursive: true });
  mkdirSync(dir, { mode: 0o700 });
  const other = StoreLock.take(path);
  assert.throws(() => lock.renew(), lockedBy(process.pid));
  other.release();
  lock.release();
});

test("another process's lock is refused while it lives and gone with it, kill -9 included", async (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const child = spawnOwned(
    process.execPath,
    ['--import', 'tsx', new URL('./children/hold-store-lock.ts', import.meta.url).pathname, path],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => killOwned(child, 'the lock holder'));
  const lines = createInterface({ input: child.stdout! });
  const [line] = await nextEvent<[string]>(lines, 'line', "the holder's first line");
  assert.equal(line, 'locked');
  assert.throws(() => StoreLock.take(path), lockedBy(child.pid as number));
  child.kill('SIGKILL');
  await within('the holder to die', exitOf(child));
  StoreLock.take(path).release();
});
