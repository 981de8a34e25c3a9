/**
 * Retention, beside the verdict path: a timer (unref'd, so it never keeps the process alive) asks
 * the retention thread (store/retention-thread.ts, started with the first pass) to delete events
 * older than `maxAgeDays`, then — while the data exceeds `maxBytes` — the oldest events, in slices
 * of about `sliceMs` (store/prune.ts). Nothing of it runs on the event loop: there, a pass held
 * verdicts for up to ~0.5 s at a time (docs/performance.md).
 */
import type { StoreOp } from './errors.js';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';
import type { RetentionRun } from './prune.js';
import type { RetentionData, RetentionReply, RetentionRequest } from './retention-thread.js';
import { startThread } from './start-thread.js';
import { HELPER_THREAD_IDLE_MS, ThreadRequests } from './thread-requests.js';

export type { RetentionRun } from './prune.js';

const THREAD_URL = new URL(
  import.meta.url.endsWith('.ts') ? './retention-thread.ts' : './retention-thread.js',
  import.meta.url,
);

export interface RetentionOptions {
  /** Events older than this many days are deleted (default 90). */
  maxAgeDays?: number;
  /**
   * Data bytes above which the oldest events are deleted (default 1 GiB, min 64 KiB). The tables
   * never deleted by size (poisoned pages …) leave the events what remains; when they alone exceed
   * it, no event is deleted by size and a pass reports it (`onError('prune')`).
   */
  maxBytes?: number;
  /** How often the timer runs (default 10 minutes). */
  intervalMs?: number;
  /** Most rows one delete statement takes (default 5000); fewer when a slice would take longer. */
  chunkRows?: number;
  /** About how long one slice may hold the write lock, in ms (default 2). */
  sliceMs?: number;
  /** How long the thread is kept after a pass (default HELPER_THREAD_IDLE_MS); the next starts it. */
  threadIdleMs?: number;
  now?: () => number;
  onError?: (op: StoreOp, err: unknown) => void;
}

export const RETENTION_DEFAULTS = {
  maxAgeDays: 90,
  maxBytes: 1024 ** 3,
  intervalMs: 10 * 60_000,
  chunkRows: 5000,
  sliceMs: 2,
} as const;

const DAY_MS = 86_400_000;

function positive(name: string, v: number, min: number): number {
  if (!Number.isFinite(v) || v < min) {
    throw new StoreError(
      'SEAWALL_STORE_INVALID_OPTION',
      `retention ${name} must be at least ${min}, got ${v}`,
      {
        option: name,
        value: v,
      },
    );
  }
  return v;
}

/** What a pass reports when the tables it never deletes by size alone exceed the bound. */
function keptOverBound(keptBytes: number, maxBytes: number): StoreError {
  return new StoreError(
    'SEAWALL_STORE_PRUNE',
    `the poisoned pages, actions, sessions and policies alone hold ${keptBytes} bytes, over ` +
      `retention.maxBytes (${maxBytes}); they are never deleted by size, so the store stays larger ` +
      'than the bound (no event is deleted for it)',
    { keptBytes, maxBytes },
  );
}

export class Retention {
  readonly maxAgeDays: number;
  readonly maxBytes: number;
  readonly intervalMs: number;
  readonly chunkRows: number;
  readonly sliceMs: number;
  readonly #store: EventStore;
  readonly #now: () => number;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<RetentionRun | null> | null = null;
  #stopped = false;
  /** Shared with the thread: 1 ends a pass at its next slice. */
  readonly #stop = new Int32Array(new SharedArrayBuffer(4));
  readonly #thread: ThreadRequests<RetentionReply>;

  constructor(store: EventStore, opts: RetentionOptions = {}) {
    this.maxAgeDays = positive('maxAgeDays', opts.maxAgeDays ?? RETENTION_DEFAULTS.maxAgeDays, 0.0001);
    this.maxBytes = Math.floor(positive('maxBytes', opts.maxBytes ?? RETENTION_DEFAULTS.maxBytes, 65_536));
    this.intervalMs = positive('intervalMs', opts.intervalMs ?? RETENTION_DEFAULTS.intervalMs, 1000);
    this.chunkRows = Math.floor(positive('chunkRows', opts.chunkRows ?? RETENTION_DEFAULTS.chunkRows, 1));
    this.sliceMs = positive('sliceMs', opts.sliceMs ?? RETENTION_DEFAULTS.sliceMs, 0.1);
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? (() => {});
    this.#thread = new ThreadRequests<RetentionReply>({
      start: () => {
        const data: RetentionData = {
          kind: 'seawall-retention',
          path: store.path,
          stop: this.#stop.buffer as SharedArrayBuffer,
        };
        return startThread(THREAD_URL, { workerData: data });
      },
      answer: (m) => {
        if (m.run) return m.run;
        throw new StoreError('SEAWALL_STORE_PRUNE', `retention failed: ${m.error}`);
      },
      exited: (code) =>
        new StoreError('SEAWALL_STORE_PRUNE', `the retention thread exited with code ${code}`),
      failed: (reason) => new StoreError('SEAWALL_STORE_PRUNE', `the retention thread failed: ${reason}`),
      // A pass every intervalMs (10 minutes by default): the thread is not kept between them.
      idleMs: opts.threadIdleMs ?? HELPER_THREAD_IDLE_MS,
    });
  }

  /** Whether the retention thread is running now (a pass, or within its idle time after one). */
  get threadRunning(): boolean {
    return this.#thread.running;
  }

  /** Starts the periodic run (first run after one interval). */
  start(): void {
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => void this.run(), this.intervalMs);
    this.#timer.unref();
  }

  /**
   * One pass: by age, then by size. A pass already running is joined, not doubled. Resolves null
   * when the store failed (reported as `prune`).
   */
  run(): Promise<RetentionRun | null> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Stops the timer, ends a running pass at its next slice, waits for it, and ends the thread. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    Atomics.store(this.#stop, 0, 1);
    Atomics.notify(this.#stop, 0);
    await this.#running;
    await this.#thread.stop(new StoreError('SEAWALL_STORE_CLOSED', 'retention stopped'));
  }

  async #pass(): Promise<RetentionRun | null> {
    if (this.#stopped || this.#store.closed) return null;
    try {
      const run = await this.#ask({
        cutoffMs: this.#now() - this.maxAgeDays * DAY_MS,
        maxBytes: this.maxBytes,
        chunkRows: this.chunkRows,
        sliceMs: this.sliceMs,
      });
      if (run.keptBytes > this.maxBytes) this.#onError('prune', keptOverBound(run.keptBytes, this.maxBytes));
      return run;
    } catch (err) {
      this.#onError('prune', err);
      return null;
    }
  }

  #ask(req: Omit<RetentionRequest, 'id'>): Promise<RetentionRun> {
    return this.#thread.ask((id) => ({ id, ...req }) satisfies RetentionRequest) as Promise<RetentionRun>;
  }
}
