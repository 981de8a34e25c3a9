/**
 * One daemon per event store. A second daemon given the same state directory (started by hand
 * beside the service, say) would, before it even found the plugin socket taken, insert the first
 * one's write-ahead file and truncate it under it, remove the segments its writer thread is about
 * to read, and close its live sessions' rows: answered events lost. The lock is flock(2) on
 * `<store>.lock`, taken before the store is opened and held until the daemon ends; the kernel
 * releases it with the process however that ends, so a kill -9 never leaves a stale one. The file
 * names the pid that holds it, for the refusal.
 */
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tryLockExclusive } from '../kvm/index.js';
import { StoreError } from './errors.js';

export class StoreLock {
  readonly #storePath: string;
  readonly path: string;
  #fd: number | null;

  private constructor(storePath: string) {
    this.#storePath = storePath;
    this.path = `${storePath}.lock`;
    this.#fd = lockFile(storePath, this.path);
  }

  /** Takes the lock of the store at `storePath`; SEAWALL_STORE_LOCKED when another process holds it. */
  static take(storePath: string): StoreLock {
    return new StoreLock(storePath);
  }

  /**
   * After the state directory was removed or replaced (the store reopens it), the lock is on a
   * file no longer at `path`: takes it again on the one there now, or throws SEAWALL_STORE_LOCKED
   * when another daemon has taken that one meanwhile (then the store must not be reopened).
   */
  renew(): void {
    if (this.#fd !== null && sameFile(this.#fd, this.path)) return;
    const fd = lockFile(this.#storePath, this.path);
    this.release();
    this.#fd = fd;
  }

  /** Releases the lock (closing the file does). Idempotent. */
  release(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}

/** The lock file, open and locked, with this process's pid in it. */
function lockFile(storePath: string, path: string): number {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    if (!tryLockExclusive(fd)) {
      const pid = /^\d+/.exec(readFileSync(fd, 'utf8').slice(0, 32))?.[0] ?? null;
      throw new StoreError(
        'SEAWALL_STORE_LOCKED',
        `${storePath} is in use by another seawall daemon${pid ? ` (pid ${pid})` : ''}: one daemon per state directory`,
        { path: storePath, pid: pid === null ? null : Number(pid) },
      );
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function sameFile(fd: number, path: string): boolean {
  try {
    const open = fstatSync(fd);
    const there = statSync(path);
    return open.ino === there.ino && open.dev === there.dev;
  } catch {
    return false;
  }
}
