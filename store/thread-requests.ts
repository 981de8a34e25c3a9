/**
 * Requests to one of the store's helper threads — the reader (store/reader-client.ts), the
 * retention thread (store/retention.ts) — each answered by its id. The first request starts the
 * thread. While requests wait it keeps the process alive, as any I/O would; idle, it does not.
 * When it fails or exits, every request waiting on it fails, and the next request starts another.
 * With `idleMs`, a thread that has answered everything and is asked nothing more for that long is
 * ended, and the next request starts another: each thread holds its own V8 heap and SQLite
 * connection (~10–20 MB of the daemon's resident set), which a daemon in service, read now and
 * then, need not keep.
 * The thread answers in order, so a request's timeout runs from the later of its post and the
 * thread's last answer: requests queued behind slow reads are not failed while the thread answers.
 */
import type { Worker } from 'node:worker_threads';
import { thrownText } from '../errors/index.js';
import { IdleTimer } from './idle-timer.js';

/**
 * How long the reader and retention threads are kept with nothing to answer: longer than the
 * pause between a follower's reads, shorter than anyone would notice the memory.
 */
export const HELPER_THREAD_IDLE_MS = 10_000;

interface Timeout {
  ms: number;
  error: () => Error;
}

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timeout?: Timeout;
}

export interface ThreadRequestsOptions<Reply> {
  /** Starts the thread. */
  start: () => Worker;
  /** A reply's value; throws the error a failed request rejects with. */
  answer: (reply: Reply) => unknown;
  /** What waiting requests fail with when the thread exits by itself. */
  exited: (code: number) => Error;
  /**
   * What waiting requests fail with when the thread throws a value that is not an Error (a
   * better-sqlite3 error arrives as `{ code }`, errors/thrown-text.ts), given its text.
   */
  failed: (reason: string) => Error;
  /** Ends the thread once it has had nothing to answer for this long; kept for good without. */
  idleMs?: number;
}

export class ThreadRequests<Reply extends { id: number }> {
  readonly #opts: ThreadRequestsOptions<Reply>;
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #waiting = new Map<number, Waiter>();
  /** Armed for the oldest waiting request with a timeout, from its post or the last answer. */
  #timer: NodeJS.Timeout | null = null;
  /**
   * Armed while the thread runs with nothing to answer (`idleMs`). When it fires with nothing
   * waiting, the thread is ended as `stop` would end it: nothing waits, so nothing fails.
   */
  readonly #idle: IdleTimer;

  constructor(opts: ThreadRequestsOptions<Reply>) {
    this.#opts = opts;
    this.#idle = new IdleTimer(opts.idleMs, () => {
      if (this.#waiting.size === 0) void this.#end();
    });
  }

  /** Whether a thread is running now. */
  get running(): boolean {
    return this.#worker !== null;
  }

  /**
   * Posts `message(id)` to the thread (started if none runs) and resolves with its answer. When
   * the thread has answered nothing for `timeout.ms` while this is the oldest request waiting with
   * a timeout, the thread is ended, and this request and every other waiting fail with
   * `timeout.error`.
   */
  ask(message: (id: number) => unknown, timeout?: Timeout): Promise<unknown> {
    const worker = this.#ensure();
    this.#idle.clear();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject, ...(timeout ? { timeout } : {}) });
      worker.postMessage(message(id));
      worker.ref();
      if (timeout && !this.#timer) this.#arm();
    });
  }

  /** Arms the timer, from now, for the oldest waiting request with a timeout (if any). */
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const w of this.#waiting.values()) {
      if (!w.timeout) continue;
      const { ms, error } = w.timeout;
      this.#timer = setTimeout(() => {
        this.#timer = null;
        void this.stop(error());
      }, ms);
      this.#timer.unref();
      return;
    }
  }

  /** Ends the thread; requests waiting fail with `err`. Resolves once it has exited. */
  async stop(err: Error): Promise<void> {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    const ended = this.#end();
    for (const w of waiting) w.reject(err);
    await ended;
  }

  /** Ends the thread (nothing may wait on it any more); resolves once it has exited. */
  async #end(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#idle.clear();
    await worker?.terminate();
  }

  #ensure(): Worker {
    if (this.#worker) return this.#worker;
    const worker = this.#opts.start();
    worker.on('message', (m: Reply) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) {
        worker.unref();
        this.#idle.arm();
      }
      // An answer is progress: the oldest request still waiting gets its whole timeout from now.
      if (this.#timer) this.#arm();
      let value: unknown;
      try {
        value = this.#opts.answer(m);
      } catch (err) {
        w.reject(err as Error);
        return;
      }
      w.resolve(value);
    });
    const gone = (err: Error) => {
      if (this.#worker === worker) void this.stop(err);
    };
    worker.on('error', (err: unknown) =>
      gone(err instanceof Error ? err : this.#opts.failed(thrownText(err))),
    );
    worker.on('exit', (code) => gone(this.#opts.exited(code)));
    // Idle, the thread never keeps the process alive. After the 'message' listener: adding the
    // first one refs the thread's port again.
    worker.unref();
    this.#worker = worker;
    return worker;
  }
}
