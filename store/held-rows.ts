/**
 * What the write-ahead layer keeps in memory: the replay keys of every row not yet committed
 * (counted, since a key may be pending twice), and the rows answered while the store is faulty —
 * bounded, the oldest dropped and reported past the bound — with the health the layer reports.
 */
import type { StoreRow } from './inserts.js';

/** Whether answered events are reaching the store. */
export interface StoreHealth {
  healthy: boolean;
  /** What went wrong; null when healthy. */
  error: string | null;
  /** When the current fault began (ms since the epoch); null when healthy. */
  sinceMs: number | null;
  /** Answered events held in memory until the store takes them. */
  heldRows: number;
  /** Rows dropped past the bound since start. */
  droppedRows: number;
  /** APPLIED results and session, action and policy rows in memory, not yet committed. */
  heldUpdates: number;
  /** Those dropped past their bound since start (store/held-updates.ts). */
  droppedUpdates: number;
}

/** Replay keys of rows written ahead or held and not yet committed, with their counts. */
export class PendingKeys {
  readonly #counts = new Map<string, number>();

  has(key: string): boolean {
    return this.#counts.has(key);
  }

  add(key: string): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  forget(keys: readonly string[]): void {
    for (const key of keys) {
      const n = this.#counts.get(key) ?? 0;
      if (n <= 1) this.#counts.delete(key);
      else this.#counts.set(key, n - 1);
    }
  }
}

/** Rows answered while the store is faulty, oldest first, at most `max`. */
export class HeldRows {
  #rows: StoreRow[] = [];
  dropped = 0;
  readonly #max: number;
  readonly #keys: PendingKeys;
  readonly #onDrop: (n: number) => void;

  constructor(max: number, keys: PendingKeys, onDrop: (n: number) => void) {
    this.#max = max;
    this.#keys = keys;
    this.#onDrop = onDrop;
  }

  get length(): number {
    return this.#rows.length;
  }

  /** Holds `rows` (their keys count as pending); past the bound the oldest are dropped. */
  hold(rows: readonly StoreRow[]): void {
    for (const row of rows) {
      this.#rows.push(row);
      this.#keys.add(row.key);
    }
    if (this.#rows.length > this.#max) {
      const drop = this.#rows.splice(0, this.#rows.length - this.#max);
      this.dropped += drop.length;
      this.#keys.forget(drop.map((r) => r.key));
      this.#onDrop(drop.length);
    }
  }

  /** The held rows, in order, without removing them (they stay held until `clear`). */
  peek(): readonly StoreRow[] {
    return this.#rows;
  }

  /** Forgets the held rows (their keys stay pending: the caller wrote them ahead). */
  clear(): void {
    this.#rows = [];
  }
}
