/**
 * Process file descriptors (pidfd_open(2), pidfd_send_signal(2)). A pidfd names one process, not a
 * number: once that process has exited, signalling through the fd fails with ESRCH even when the
 * kernel has handed its PID to someone else. That is what lets the daemon enforce a kill without
 * ever hitting a recycled PID.
 */
import { KvmSyscallError } from './ioctl.js';
import { ERRNO, lastErrno } from './libc.js';
import { type FdWatch, libcFd, readableNow, watchReadable } from './libc-fd.js';

/** Result of signalling through a pidfd. */
export type PidfdSignalResult = 'sent' | 'gone';

export const SIGKILL = 9;

export class Pidfd {
  readonly pid: number;
  #fd: number;
  #watch: FdWatch | null = null;
  /** What waits for the exit: every `onExit` since the watch began. */
  #onExit: Array<() => void> = [];

  private constructor(pid: number, fd: number) {
    this.pid = pid;
    this.#fd = fd;
  }

  /**
   * Opens a pidfd for `pid` (with O_CLOEXEC, always set by the kernel on pidfds). Throws
   * KvmSyscallError with errno ESRCH when no such process exists.
   */
  static open(pid: number): Pidfd {
    if (!Number.isInteger(pid) || pid <= 0) throw new KvmSyscallError('pidfd_open', ERRNO.ESRCH as number);
    const fd = libcFd().pidfdOpen(pid, 0);
    if (fd < 0) throw new KvmSyscallError('pidfd_open', lastErrno());
    return new Pidfd(pid, fd);
  }

  /** Takes ownership of a pidfd the kernel already gave us (SO_PEERPIDFD) for `pid`. */
  static adopt(pid: number, fd: number): Pidfd {
    return new Pidfd(pid, fd);
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Sends `sig` (0 only checks) to the process this fd names. `gone` when it has exited (ESRCH),
   * including after its PID was reused; other failures (EPERM: no CAP_KILL over it) throw.
   */
  signal(sig: number): PidfdSignalResult {
    if (this.#fd < 0) return 'gone';
    const r = libcFd().pidfdSendSignal(this.#fd, sig, 0);
    if (r === 0) return 'sent';
    const errno = lastErrno();
    if (errno === ERRNO.ESRCH) return 'gone';
    throw new KvmSyscallError('pidfd_send_signal', errno);
  }

  /** The process has exited: a pidfd becomes readable then (pidfd_open(2) "poll"). */
  exited(): boolean {
    return this.#fd < 0 || readableNow(this.#fd);
  }

  /**
   * Calls `onExit` once, on the event loop, when the process exits; each caller's, in the order
   * asked (a second kill of the same VMM while the first's watch waits). One watch per pidfd.
   * Returns what forgets it: a kill that ends while the process lives (refused, or not enforced)
   * must not leave its callback behind for as long as the process runs.
   */
  onExit(onExit: () => void): () => void {
    if (this.#fd < 0) return () => {};
    // Its own entry: the same function asked for twice is forgotten once each.
    const entry = () => onExit();
    this.#onExit.push(entry);
    const forget = () => {
      const i = this.#onExit.indexOf(entry);
      if (i >= 0) this.#onExit.splice(i, 1);
      if (this.#onExit.length > 0 || this.#watch === null) return;
      this.#watch.close();
      this.#watch = null;
    };
    if (this.#watch) return forget;
    const watch = watchReadable(this.#fd, () => {
      watch.close();
      if (this.#watch === watch) this.#watch = null;
      const waiting = this.#onExit;
      this.#onExit = [];
      for (const f of waiting) f();
    });
    watch.unref();
    this.#watch = watch;
    return forget;
  }

  /** Callbacks waiting for the process's exit (`onExit`, not yet called or forgotten). */
  get exitWaiters(): number {
    return this.#onExit.length;
  }

  /** Stops any watch and closes the fd; idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#watch?.close();
    this.#watch = null;
    this.#onExit = [];
    libcFd().close(this.#fd);
    this.#fd = -1;
  }
}
