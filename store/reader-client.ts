/**
 * The main thread's handle on the reader thread (store/reader-thread.ts): reads for the control
 * socket, answered asynchronously, never on the event loop. The thread starts on the first read,
 * ends after `idleMs` without one (store/thread-requests.ts), and is started again by the next, and
 * after the store was reopened (a lost state directory) or the thread failed.
 */
import { EncodedJson } from './encoded-json.js';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';
import type { FollowQuery } from './follow-query.js';
import type { EventQuery, PoisonCursor, PoisonedPage, StoreTotals } from './queries.js';
import type { ReaderData, ReaderMethod, ReaderReply, ReaderRequest } from './reader-thread.js';
import type { StoredEvent } from './rows.js';
import { startThread } from './start-thread.js';
import { HELPER_THREAD_IDLE_MS, ThreadRequests } from './thread-requests.js';
import type { PolicyText, WhyQuery } from './why.js';

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './reader-thread.ts' : './reader-thread.js',
  import.meta.url,
);

/** A read that takes longer than this fails (and the thread is replaced). */
const READ_TIMEOUT_MS = 60_000;

/** What a read waits for and stops at: the write-ahead layer (store/write-ahead.ts) in the daemon. */
export interface ReadsCommitted {
  /** Resolves once what was answered so far is committed (or as far as it can be: `WriteAhead.settle`). */
  settle(): Promise<void>;
  /** The lowest event id not yet committed, null when none is (`WriteAhead.uncommittedFrom`). */
  readonly uncommittedFrom: number | null;
}

/** A store without a write-ahead layer: everything answered is committed when it is answered. */
const COMMITTED: ReadsCommitted = { settle: async () => {}, uncommittedFrom: null };

export class StoreReader {
  readonly #store: EventStore;
  readonly #committed: ReadsCommitted;
  #closed = false;
  /** The store's generation the running thread opened (a reopened store needs a new thread). */
  #generation = -1;
  readonly #thread: ThreadRequests<ReaderReply>;

  constructor(store: EventStore, committed: ReadsCommitted = COMMITTED, idleMs = HELPER_THREAD_IDLE_MS) {
    this.#store = store;
    this.#committed = committed;
    this.#thread = new ThreadRequests<ReaderReply>({
      start: () => {
        this.#generation = this.#store.generation;
        const data: ReaderData = { kind: 'seawall-reader', path: this.#store.path };
        return startThread(WORKER_URL, { workerData: data });
      },
      answer: (m) => {
        if (m.error !== undefined)
          throw new StoreError('SEAWALL_STORE_READER', `store read failed: ${m.error}`);
        return m.json !== undefined ? new EncodedJson(m.json) : m.result;
      },
      exited: (code) => new StoreError('SEAWALL_STORE_READER', `store reader exited with code ${code}`),
      failed: (reason) => new StoreError('SEAWALL_STORE_READER', `store reader failed: ${reason}`),
      idleMs,
    });
  }

  events(q: EventQuery): Promise<StoredEvent[]> {
    return this.#read('events', [q]) as Promise<StoredEvent[]>;
  }
  /** The same rows as `events`, as JSON text made on the reader thread (for the control socket). */
  eventsEncoded(q: EventQuery): Promise<EncodedJson> {
    return this.#read('events', [q], true) as Promise<EncodedJson>;
  }
  /**
   * `StoreQueries.vms` as JSON text made on the reader thread: a store of many VMs costs the event
   * loop no clone of its rows, nor their encoding.
   */
  vmsEncoded(connected: readonly string[], limit?: number, after?: string): Promise<EncodedJson> {
    return this.#read('vms', [connected, limit, after], true) as Promise<EncodedJson>;
  }
  poisonedPages(vm?: string, limit?: number, after?: PoisonCursor): Promise<PoisonedPage[]> {
    return this.#read('poisonedPages', [vm, limit, after]) as Promise<PoisonedPage[]>;
  }
  poisonedPagesEncoded(vm?: string, limit?: number, after?: PoisonCursor): Promise<EncodedJson> {
    return this.#read('poisonedPages', [vm, limit, after], true) as Promise<EncodedJson>;
  }
  /** `StoreQueries.follow` as JSON text made on the reader thread, bounded as `#bounded` says. */
  followEncoded(q: FollowQuery): Promise<EncodedJson> {
    return this.#read('follow', [q], true) as Promise<EncodedJson>;
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
    return this.#thread.running;
  }

  /** Ends the thread; reads waiting fail, and no read starts one again. */
  close(): void {
    this.#closed = true;
    void this.#thread.stop(new StoreError('SEAWALL_STORE_CLOSED', 'the event store reader is closed'));
  }

  async #read(method: ReaderMethod, args: unknown[], encode = false): Promise<unknown> {
    this.#open();
    await this.#committed.settle();
    // Checked again: the daemon may have begun to stop while the read waited. A thread started
    // now would outlive the store.
    this.#open();
    // A thread of a store since reopened (its directory was lost and made again) reads the old file.
    if (this.#thread.running && this.#generation !== this.#store.generation)
      void this.#thread.stop(new StoreError('SEAWALL_STORE_READER', 'store reader restarted'));
    const read = this.#bounded(method, args);
    return this.#thread.ask((id) => ({ id, method, args: read, encode }) satisfies ReaderRequest, {
      ms: READ_TIMEOUT_MS,
      error: () =>
        new StoreError('SEAWALL_STORE_READER', `store read ${method} took over ${READ_TIMEOUT_MS} ms`),
    });
  }

  /**
   * A follower's read stops below the lowest id not yet committed, taken now, before the thread's
   * snapshot: every row below it is in that snapshot (store/follow-query.ts).
   */
  #bounded(method: ReaderMethod, args: unknown[]): unknown[] {
    if (method !== 'follow') return args;
    const below = this.#committed.uncommittedFrom;
    return below === null ? args : [{ ...(args[0] as FollowQuery), belowId: below }];
  }

  #open(): void {
    if (this.#closed || this.#store.closed)
      throw new StoreError('SEAWALL_STORE_CLOSED', `event store ${this.#store.path} is closed`);
  }
}
