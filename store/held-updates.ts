/**
 * The updates — APPLIED results, session, action and policy rows (store/updates.ts) — waiting in
 * memory for the next hand-over. Healthy, that is one `flushMs`. While the store is faulty they
 * wait for the once-a-second retry instead, one segment of them at a time, with those of a failed
 * commit put back in front: a busy fleet sends an APPLIED result per verdict and a session row per
 * connection, so a long fault must not grow a segment per hand-over.
 *
 * At most `max`: past it the oldest APPLIED results go first — a result only completes an event's
 * row, while a session, action or policy row (a close carries the whole row) is the only record of
 * what it says — then the oldest of the rest. Drops are counted, and reported once a second
 * (`reportDrops`, from the caller's check), not once per update.
 */
import { type AppliedUpdate, isApplied, type StoreUpdate } from './updates.js';

/** A queue whose oldest items are dropped in O(1): the slots before `#head` are gone. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Drops the oldest `n`; the array is compacted once half of it is dropped slots. */
  drop(n: number): void {
    this.#head += n;
    if (this.#head * 2 >= this.#items.length) this.#items = this.#items.slice(this.#head);
    else return;
    this.#head = 0;
  }

  /** Everything, oldest first, left in place. */
  peek(): T[] {
    return this.#items.slice(this.#head);
  }

  /** Everything, oldest first; the queue is then empty. */
  take(): T[] {
    const items = this.#head === 0 ? this.#items : this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    return items;
  }
}

/** Updates waiting for a hand-over, at most `max`; see the file's comment for what goes past it. */
export class HeldUpdates {
  readonly #max: number;
  readonly #applied = new Fifo<AppliedUpdate>();
  readonly #rows = new Fifo<StoreUpdate>();
  /** Dropped past the bound since start. */
  dropped = 0;
  /** Dropped and not yet reported (`reportDrops`). */
  #unreported = 0;
  readonly #onDrop: (n: number) => void;
  /** Some came back from a commit that failed: their next segment is a retry. */
  #retried = false;

  constructor(max: number, onDrop: (n: number) => void) {
    this.#max = max;
    this.#onDrop = onDrop;
  }

  get length(): number {
    return this.#applied.length + this.#rows.length;
  }

  /** Whether any of them came back from a failed commit. */
  get retried(): boolean {
    return this.#retried;
  }

  push(u: StoreUpdate): void {
    if (isApplied(u)) this.#applied.push(u);
    else this.#rows.push(u);
    if (this.length > this.#max) this.#trim();
  }

  /**
   * Puts back, in front of those waiting, the updates of a commit that failed. Their order against
   * the others does not matter: every update is idempotent or carries its whole row, and an APPLIED
   * result whose row is not stored yet waits for it (store/inserts.ts).
   */
  putBack(updates: readonly StoreUpdate[]): void {
    if (updates.length === 0) return;
    this.#retried = true;
    const applied = this.#applied.take();
    const rows = this.#rows.take();
    for (const u of updates) {
      if (isApplied(u)) this.#applied.push(u);
      else this.#rows.push(u);
    }
    for (const u of applied) this.#applied.push(u);
    for (const u of rows) this.#rows.push(u);
    if (this.length > this.#max) this.#trim();
  }

  /** All of them, in the order `take` gives, left in place. */
  peek(): StoreUpdate[] {
    const all = this.#rows.peek();
    for (const u of this.#applied.peek()) all.push(u);
    return all;
  }

  /** All of them, for one segment: the session, action and policy rows, then the results. */
  take(): StoreUpdate[] {
    this.#retried = false;
    const rows = this.#rows.take();
    for (const u of this.#applied.take()) rows.push(u);
    return rows;
  }

  /** Reports the updates dropped since the last call, if any, in one call of `onDrop`. */
  reportDrops(): void {
    const n = this.#unreported;
    this.#unreported = 0;
    if (n > 0) this.#onDrop(n);
  }

  #trim(): void {
    const over = this.length - this.#max;
    const applied = Math.min(over, this.#applied.length);
    this.#applied.drop(applied);
    this.#rows.drop(over - applied);
    this.dropped += over;
    this.#unreported += over;
  }
}
