/**
 * The main thread's handle on the reader thread (store/reader-thread.ts): reads for the control
 * socket, answered asynchronously, never on the event loop. The thread starts on the first read
 * and is started again after the store was reopened (a lost state directory) or the thread failed.
 */
import type { Worker } from 'node:worker_threads';
import { EncodedJson } from './encoded-json.js';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';
import type { EventQuery, PoisonCursor, PoisonedPage, StoreTotals, VmSummary } from './queries.js';
import type { ReaderData, ReaderMethod, ReaderReply, ReaderRequest } from './reader-thread.js';
import type { StoredEvent } from './rows.js';
import { startThread } from './start-thread.js';
import type { PolicyText, WhyQuery } from './why.js';

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './reader-thread.ts' : './reader-thread.js',
  import.meta.url,
);

/** A read that takes longer than this fails (and the thread is replaced). */
const READ_TIMEOUT_MS = 60_000;

export class StoreReader {
  readonly #store: EventStore;
  /** Waits until what was answered so far is committed (the write-ahead layer's settle). */
  readonly #settle: () => Promise<void>;
  #worker: Worker | null = null;
  #closed = false;
  #generation = -1;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(store: EventStore, settle: () => Promise<void> = async () => {}) {
    this.#store = store;
    this.#settle = settle;
  }

  events(q: EventQuery): Promise<StoredEvent[]> {
    return this.#read('events', [q]) as Promise<StoredEvent[]>;
  }
  /** The same rows as `events`, as JSON text made on the reader thread (for the control socket). */
  eventsEncoded(q: EventQuery): Promise<EncodedJson> {
    return this.#read('events', [q], true) as Promise<EncodedJson>;
  }
  vms(): Promise<VmSummary[]> {
    return this.#read('vms', []) as Promise<VmSummary[]>;
  }
  poisonedPages(vm?: string, limit?: number, after?: PoisonCursor): Promise<PoisonedPage[]> {
    return this.#read('poisonedPages', [vm, limit, after]) as Promise<PoisonedPage[]>;
  }
  poisonedPagesEncoded(vm?: string, limit?: number, after?: PoisonCursor): Promise<EncodedJson> {
    return this.#read('poisonedPages', [vm, limit, after], true) as Promise<EncodedJson>;
  }
  totals(): Promise<StoreTotals> {
    return this.#read('totals', []) as Promise<StoreTotals>;
  }
  /**
   * `seawall why` (store/why.ts), built on the thread and encoded there as JSON text (an answer
   * holds up to a few thousand events of evidence); `current` is the policy in force.
   */
  whyEncoded(q: WhyQuery, current: PolicyText | null): Promise<EncodedJson> {
    return this.#read('why', [q, current], true) as Promise<EncodedJson>;
  }

  /** Whether a reader thread is running now. */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Ends the thread; reads waiting fail, and no read starts one again. */
  close(): void {
    this.#closed = true;
    this.#stop(new StoreError('SEAWALL_STORE_CLOSED', 'the event store reader is closed'));
  }

  async #read(method: ReaderMethod, args: unknown[], encode = false): Promise<unknown> {
    this.#open();
    await this.#settle();
    // Checked again: the daemon may have begun to stop while the read waited. A thread started
    // now would outlive the store.
    this.#open();
    const worker = this.#ensure();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#stop(
          new StoreError('SEAWALL_STORE_READER', `store read ${method} took over ${READ_TIMEOUT_MS} ms`),
        );
      }, READ_TIMEOUT_MS);
      timer.unref();
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      worker.postMessage({ id, method, args, encode } satisfies ReaderRequest);
      // A read in progress keeps the process alive, as any I/O would; an idle thread does not.
      worker.ref();
    });
  }

  #open(): void {
    if (this.#closed || this.#store.closed)
      throw new StoreError('SEAWALL_STORE_CLOSED', `event store ${this.#store.path} is closed`);
  }

  #ensure(): Worker {
    if (this.#worker && this.#generation === this.#store.generation) return this.#worker;
    this.#stop(null);
    const data: ReaderData = { kind: 'seawall-reader', path: this.#store.path };
    const worker = startThread(WORKER_URL, { workerData: data });
    worker.on('message', (m: ReaderReply) => {
      const w = this.#waiting.get(m.id);
      if (!w) return;
      this.#waiting.delete(m.id);
      if (this.#waiting.size === 0) worker.unref();
      if (m.error !== undefined)
        w.reject(new StoreError('SEAWALL_STORE_READER', `store read failed: ${m.error}`));
      else w.resolve(m.json !== undefined ? new EncodedJson(m.json) : m.result);
    });
    worker.on('error', (err) => {
      if (this.#worker === worker) this.#stop(err);
    });
    worker.on('exit', (code) => {
      if (this.#worker === worker)
        this.#stop(new StoreError('SEAWALL_STORE_READER', `store reader exited with code ${code}`));
    });
    // Idle, the thread never keeps the process alive. After the 'message' listener: adding the
    // first one refs the thread's port again.
    worker.unref();
    this.#worker = worker;
    this.#generation = this.#store.generation;
    return worker;
  }

  /** Ends the thread; reads waiting on it fail with `err` (or are left to the next thread's fate when null). */
  #stop(err: Error | null): void {
    const worker = this.#worker;
    this.#worker = null;
    if (worker) void worker.terminate();
    const failure = err ?? new StoreError('SEAWALL_STORE_READER', 'store reader restarted');
    for (const w of this.#waiting.values()) w.reject(failure);
    this.#waiting.clear();
  }
}
