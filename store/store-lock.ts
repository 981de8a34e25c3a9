/**
 * One daemon per event store. A second daemon given the same state directory (started by hand
 * beside the service, say) would, before it even found the plugin socket taken, insert the first
 * one's write-ahead file and truncate it under it, remove the segments its writer thread is about
 * to read, and close its live sessions' rows: answered events lost. The lock is flock(2) on
 * `<store>.lock`, taken before the store is opened and held until the daemon ends; the kernel
 * releases it with the process however that ends, so a kill -9 never leaves a stale one. The file
 * names the pid that holds it, for the refusal.
 */
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { tryLockExclusive } from '../kvm/index.js';
import { StoreError } from './errors.js';

export class StoreLock {
  readonly path: string;
  #fd: number | null;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /** Takes the lock of the store at `storePath`; SEAWALL_STORE_LOCKED when another process holds it. */
  static take(storePath: string): StoreLock {
    const path = `${storePath}.lock`;
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
    return new StoreLock(path, fd);
  }

  /** Releases the lock (closing the file does). Idempotent. */
  release(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}
