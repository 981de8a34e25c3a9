/**
 * Retention, off the verdict path: a timer (unref'd, so it never keeps the process alive) deletes
 * events older than `maxAgeDays`, then — while the data exceeds `maxBytes` — the oldest events in
 * chunks. Each chunk is its own short transaction and the run yields to the event loop between
 * chunks, so pipeline batches interleave with pruning instead of waiting behind it. Poisoned pages
 * are never pruned: they are the VM's history. Actions and closed sessions go by age with events.
 */

import type { Statement } from 'better-sqlite3';
import type { StoreOp } from './errors.js';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';

export interface RetentionOptions {
  /** Events older than this many days are deleted (default 90). */
  maxAgeDays?: number;
  /** Data pages above this many bytes trigger deleting the oldest events (default 1 GiB, min 64 KiB). */
  maxBytes?: number;
  /** How often the timer runs (default 10 minutes). */
  intervalMs?: number;
  /** Rows per delete transaction (default 5000). */
  chunkRows?: number;
  now?: () => number;
  onError?: (op: StoreOp, err: unknown) => void;
}

export interface RetentionRun {
  deletedByAge: number;
  deletedBySize: number;
  /** Data bytes after the run. */
  bytes: number;
}

export const RETENTION_DEFAULTS = {
  maxAgeDays: 90,
  maxBytes: 1024 ** 3,
  intervalMs: 10 * 60_000,
  chunkRows: 5000,
} as const;

const DAY_MS = 86_400_000;
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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

export class Retention {
  readonly maxAgeDays: number;
  readonly maxBytes: number;
  readonly intervalMs: number;
  readonly chunkRows: number;
  readonly #store: EventStore;
  readonly #now: () => number;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  #byAge!: Statement;
  #oldest!: Statement;
  #actionsByAge!: Statement;
  #sessionsByAge!: Statement;
  /** The store generation the statements were prepared on (a reopen makes a new connection). */
  #generation = -1;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<RetentionRun | null> | null = null;
  #stopped = false;

  constructor(store: EventStore, opts: RetentionOptions = {}) {
    this.maxAgeDays = positive('maxAgeDays', opts.maxAgeDays ?? RETENTION_DEFAULTS.maxAgeDays, 0.0001);
    this.maxBytes = Math.floor(positive('maxBytes', opts.maxBytes ?? RETENTION_DEFAULTS.maxBytes, 65_536));
    this.intervalMs = positive('intervalMs', opts.intervalMs ?? RETENTION_DEFAULTS.intervalMs, 1000);
    this.chunkRows = Math.floor(positive('chunkRows', opts.chunkRows ?? RETENTION_DEFAULTS.chunkRows, 1));
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#onError = opts.onError ?? (() => {});
    this.#prepare();
  }

  #prepare(): void {
    if (this.#generation === this.#store.generation) return;
    this.#generation = this.#store.generation;
    const db = this.#store.db;
    this.#byAge = db.prepare(
      'DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time_ms < ? ORDER BY time_ms LIMIT ?)',
    );
    this.#oldest = db.prepare(
      'DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY time_ms, id LIMIT ?)',
    );
    this.#actionsByAge = db.prepare('DELETE FROM actions WHERE time_ms < ?');
    this.#sessionsByAge = db.prepare('DELETE FROM sessions WHERE closed_ms IS NOT NULL AND closed_ms < ?');
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

  /** Stops the timer and waits for a running pass to end at its next chunk. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  async #pass(): Promise<RetentionRun | null> {
    const store = this.#store;
    try {
      this.#prepare();
      const cutoff = this.#now() - this.maxAgeDays * DAY_MS;
      let deletedByAge = 0;
      for (;;) {
        if (this.#stopped || store.closed) break;
        const n = this.#byAge.run(cutoff, this.chunkRows).changes;
        deletedByAge += n;
        if (n < this.chunkRows) break;
        await yieldToLoop();
      }
      if (!this.#stopped && !store.closed) {
        this.#actionsByAge.run(cutoff);
        this.#sessionsByAge.run(cutoff);
      }
      let deletedBySize = 0;
      while (!this.#stopped && !store.closed && store.queries.usedBytes() > this.maxBytes) {
        const n = this.#oldest.run(this.chunkRows).changes;
        deletedBySize += n;
        if (n === 0) break; // only poisoned pages and actions remain: they are kept
        await yieldToLoop();
      }
      if (store.closed) return null;
      // auto_vacuum=INCREMENTAL: hand the freed pages back so the file shrinks too.
      if (deletedByAge + deletedBySize > 0) store.db.pragma('incremental_vacuum');
      return { deletedByAge, deletedBySize, bytes: store.queries.usedBytes() };
    } catch (err) {
      this.#onError('prune', err);
      return null;
    }
  }
}
