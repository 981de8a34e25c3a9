/**
 * The write-ahead file in front of the event store. On the verdict path a batch costs one
 * `write(2)` of its rows, as JSON lines, to `<store>.pending` — in the kernel's page cache before
 * the verdicts leave, so it survives kill -9 exactly like a WAL commit would — and SQLite takes
 * the rows later, many batches to a transaction, off the verdict path. At open, rows a killed
 * daemon left in the file are inserted (inserts are idempotent) and the file is emptied.
 *
 * Bounded: past `maxPending` queued rows the queue is flushed at once, on the event path, rather
 * than grown. A failing flush keeps the rows (file and queue) for the next attempt.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { EventRecord } from '../event-bus.js';
import type { StoreOp } from './errors.js';
import type { EventStore, StoreRow } from './event-store.js';

export interface WriteAheadOptions {
  /** How long rows may wait before SQLite takes them. */
  flushMs?: number;
  /** Queued rows that force a flush. */
  maxPending?: number;
  onError?: (op: StoreOp, err: unknown) => void;
}

// Rows hold only JSON values (strings, numbers, null), so the plain stringify is the fast path.
const toJson = (row: StoreRow): string => JSON.stringify(row);

function fromJson(line: string): StoreRow | null {
  try {
    return JSON.parse(line) as StoreRow;
  } catch {
    return null; // a torn last line from a kill mid-write: that batch's verdicts never left
  }
}

export class WriteAhead {
  readonly path: string;
  readonly #store: EventStore;
  readonly #fd: number;
  readonly #flushMs: number;
  readonly #maxPending: number;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  #queue: StoreRow[] = [];
  readonly #keys = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Rows recovered from a previous run's file at open. */
  readonly recovered: number;

  constructor(store: EventStore, opts: WriteAheadOptions = {}) {
    this.#store = store;
    this.path = `${store.path}.pending`;
    this.#flushMs = opts.flushMs ?? 20;
    this.#maxPending = opts.maxPending ?? 10_000;
    this.#onError = opts.onError ?? (() => {});
    this.recovered = this.#recover();
    this.#fd = openSync(this.path, 'a', 0o600);
    store.beforeRead = () => this.flush();
  }

  /** Rows written ahead and not yet in SQLite. */
  get pending(): number {
    return this.#queue.length;
  }

  /** The verdict path: one write of the batch's rows; SQLite takes them within flushMs. */
  record(batch: readonly EventRecord[]): void {
    if (this.#closed) {
      this.#store.append(batch);
      return;
    }
    const rows = this.#store.rowsOf(batch, (key) => this.#keys.has(key));
    if (rows.length === 0) return;
    try {
      writeSync(this.#fd, `${rows.map(toJson).join('\n')}\n`);
    } catch (err) {
      // The file cannot take it: store directly, the slow but durable way.
      this.#onError('append', err);
      this.#store.appendRows(rows);
      return;
    }
    for (const row of rows) {
      this.#queue.push(row);
      this.#keys.add(row.key);
    }
    if (this.#queue.length >= this.#maxPending) this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  /** Moves every queued row into SQLite in one transaction, then empties the file. */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#queue.length === 0) return;
    if (this.#store.appendRows(this.#queue) === null) return; // kept for the next attempt
    this.#queue = [];
    this.#keys.clear();
    try {
      ftruncateSync(this.#fd, 0);
    } catch (err) {
      // Harmless: the rows are in SQLite, and replaying the file is idempotent.
      this.#onError('append', err);
    }
  }

  /** Flushes and closes the file (before the store closes). */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    closeSync(this.#fd);
  }

  #recover(): number {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return 0;
    }
    const rows = text
      .split('\n')
      .filter((l) => l !== '')
      .map(fromJson)
      .filter((r): r is StoreRow => r !== null);
    if (rows.length > 0 && this.#store.appendRows(rows) === null) {
      throw new Error(`cannot move ${rows.length} pending rows from ${this.path} into the store`);
    }
    const fd = openSync(this.path, 'r+');
    try {
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
    return rows.length;
  }
}
