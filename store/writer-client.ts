/**
 * The main thread's handle on the writer thread (store/writer-thread.ts): starts it, posts
 * segments, and — for reads and close, which must see everything decided so far — blocks in
 * `Atomics.wait` until the thread has processed a segment, then takes its acknowledgements
 * synchronously with `receiveMessageOnPort`. Everything else arrives as ordinary messages.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, type Worker } from 'node:worker_threads';
import { thrownText } from '../errors/index.js';
import { SCHED_IDLE, SCHED_OTHER, setThreadPolicy } from '../kvm/index.js';
import { StoreError } from './errors.js';
import { startThread } from './start-thread.js';
import type { StoreUpdate } from './updates.js';
import { Slot, type WriterAck, type WriterData, type WriterRequest } from './writer-thread.js';

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './writer-thread.ts' : './writer-thread.js',
  import.meta.url,
);

export interface WriterClientOptions {
  path: string;
  bootId: string;
  /**
   * A segment's outcome: `error` null when committed; `rows` read from its file; `damage`, when
   * the file had damage in it and is kept, what to tell the operator.
   */
  onAck: (id: number, error: Error | null, rows: number, damage: string | null) => void;
  /** The thread died or could not open the store: the caller commits on its own from then on. */
  onDead: (err: Error) => void;
}

export class WriterClient {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #shared: Int32Array;
  readonly #opts: WriterClientOptions;
  #dead = false;
  #closed = false;

  constructor(opts: WriterClientOptions) {
    this.#opts = opts;
    const sab = new SharedArrayBuffer(4 * Object.keys(Slot).length);
    this.#shared = new Int32Array(sab);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const data: WriterData = {
      kind: 'seawall-writer',
      path: opts.path,
      bootId: opts.bootId,
      port: port2,
      shared: sab,
    };
    try {
      this.#worker = startThread(WORKER_URL, { workerData: data, transferList: [port2] });
    } catch (err) {
      // No thread (EAGAIN: the process or its cgroup out of threads): neither port stays open.
      port1.close();
      port2.close();
      throw err;
    }
    port1.on('message', (m: WriterAck) => this.#ack(m));
    this.#worker.on('error', (err: unknown) =>
      this.#die(
        err instanceof Error
          ? err
          : new StoreError('SEAWALL_STORE_WRITER', `writer thread failed: ${thrownText(err)}`),
      ),
    );
    this.#worker.on('exit', (code) => {
      if (!this.#closed)
        this.#die(
          new StoreError('SEAWALL_STORE_WRITER', `writer thread exited with code ${code}`, {
            exitCode: code,
          }),
        );
    });
    // Neither may keep the process alive: segments left on disk are recovered at the next start.
    port1.unref();
    this.#worker.unref();
    // At exit Node tears the worker down, which takes the worker's CPU: in SCHED_IDLE, on a busy
    // host, seconds of it. An exit without `close` (a crash, process.exit) moves it back first.
    process.on('exit', this.#raiseAtExit);
  }

  /** Transactions the thread has committed (queued segments share one). */
  get commits(): number {
    return Atomics.load(this.#shared, Slot.COMMITS);
  }

  /** Checkpoints the thread ran itself (store/writer-thread.ts `CHECKPOINT_ROWS`). */
  get checkpoints(): number {
    return Atomics.load(this.#shared, Slot.CHECKPOINTS);
  }

  /** The thread's id (a task of this process), once it runs; null before. */
  get threadId(): number | null {
    return Atomics.load(this.#shared, Slot.TID) || null;
  }

  /** Whether the thread is in SCHED_IDLE: as set last through `setIdle`. */
  get idle(): boolean {
    return this.#idle;
  }

  #idle = false;
  readonly #raiseAtExit = () => this.setIdle(false);

  /**
   * Moves the thread into SCHED_IDLE or back to SCHED_OTHER. Returns null when done (or nothing
   * to do), else why not: the thread has not published its id yet, or the kernel refused.
   */
  setIdle(idle: boolean): string | null {
    if (idle === this.#idle) return null;
    const tid = Atomics.load(this.#shared, Slot.TID);
    if (tid === 0) return 'the thread has not started';
    const error = setThreadPolicy(tid, idle ? SCHED_IDLE : SCHED_OTHER);
    if (error === null) this.#idle = idle;
    return error;
  }

  /** Whether the thread waits for a post with no timeout (nothing posted for a second). */
  get asleep(): boolean {
    return Atomics.load(this.#shared, Slot.SLEEPING) === 1;
  }

  /** False once the thread has died or failed to open the store. */
  get alive(): boolean {
    return !this.#dead && !this.#closed && Atomics.load(this.#shared, Slot.CLOSED) === 0;
  }

  /** Hands a segment to the thread; its acknowledgement comes through `onAck`. */
  post(id: number, file: string | null, rows: number, updates: StoreUpdate[], updatesInFile = 0): void {
    this.#port.postMessage({
      type: 'segment',
      id,
      file,
      rows,
      updates,
      updatesInFile,
    } satisfies WriterRequest);
    Atomics.add(this.#shared, Slot.POSTED, 1);
    // A thread that polls finds it within POLL_MS; only one asleep is woken (store/writer-thread.ts).
    if (Atomics.load(this.#shared, Slot.SLEEPING) === 1) Atomics.notify(this.#shared, Slot.POSTED);
  }

  /** Has the thread look at its messages now, not at its next poll. */
  #wake(): void {
    Atomics.add(this.#shared, Slot.POSTED, 1);
    Atomics.notify(this.#shared, Slot.POSTED);
  }

  /**
   * Blocks until the thread has processed segment `id` (and every one before it) and delivers
   * their acknowledgements; false when the thread is gone or processed nothing for `stallMs`. A
   * thread that is behind but still committing is waited for: committing its segments here
   * instead would only contend with it for the database lock.
   */
  waitFor(id: number, stallMs: number): boolean {
    this.#wake();
    let seen = Atomics.load(this.#shared, Slot.DONE);
    let deadline = performance.now() + stallMs;
    for (;;) {
      const done = Atomics.load(this.#shared, Slot.DONE);
      if (done >= id) break;
      if (done !== seen) {
        seen = done;
        deadline = performance.now() + stallMs;
      }
      const left = deadline - performance.now();
      if (!this.alive || left <= 0) {
        this.#drain();
        return false;
      }
      // Short slices: a thread that dies mid-wait is noticed through CLOSED, not after the deadline.
      Atomics.wait(this.#shared, Slot.DONE, done, Math.min(left, 50));
    }
    this.#drain();
    return true;
  }

  /** Asks the thread to close its connection and waits (up to `timeoutMs`) until it has. */
  close(timeoutMs: number): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#dead && Atomics.load(this.#shared, Slot.CLOSED) === 0) {
      // Closing checkpoints the WAL: not at idle priority while this thread waits for it.
      this.setIdle(false);
      this.#port.postMessage({ type: 'close' } satisfies WriterRequest);
      this.#wake();
      Atomics.wait(this.#shared, Slot.CLOSED, 0, timeoutMs);
    }
    process.off('exit', this.#raiseAtExit);
    this.#drain();
    this.#port.close();
  }

  /**
   * Lets an idle thread go without waiting for it: it closes its connection and exits on its own.
   * Only with nothing posted and unacknowledged (store/write-ahead.ts ends it so); the thread
   * checkpointed before it went to sleep, so its close is quick, but not waited for on the event
   * loop all the same.
   */
  end(): void {
    if (this.#closed) return;
    // Out of SCHED_IDLE first: on a busy host an idle thread would take seconds to exit.
    this.setIdle(false);
    this.#closed = true;
    process.off('exit', this.#raiseAtExit);
    if (this.#dead) return;
    this.#port.postMessage({ type: 'close' } satisfies WriterRequest);
    this.#wake();
  }

  #drain(): void {
    for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) {
      this.#ack(m.message as WriterAck);
    }
  }

  #ack(m: WriterAck): void {
    if (m.id === 0)
      this.#die(new StoreError('SEAWALL_STORE_OPEN', `writer thread cannot open the store: ${m.error}`));
    else
      this.#opts.onAck(
        m.id,
        m.error === null ? null : new StoreError('SEAWALL_STORE_WRITER', m.error, { segment: m.id }),
        m.rows ?? 0,
        m.damage ?? null,
      );
  }

  /**
   * Delivers the death of a thread that is no longer `alive` before its message or exit event has
   * been read (a busy event loop reads them later): `onDead` runs now, with the thread's own
   * reason when its message is there.
   */
  reap(): void {
    this.#drain();
    this.#die(new StoreError('SEAWALL_STORE_WRITER', 'writer thread stopped'));
  }

  #die(err: Error): void {
    if (this.#dead || this.#closed) return;
    this.#dead = true;
    process.off('exit', this.#raiseAtExit);
    this.#opts.onDead(err);
  }
}
