/**
 * What the write-ahead layer keeps in memory: the replay keys of every row not yet committed
 * (counted, since a key may be pending twice), and the rows answered while the store is faulty —
 * bounded, the oldest dropped and reported past the bound — with the health the layer reports.
 */
import type { StoreRow } from './inserts.js';
import type { ReplayKey } from './rows.js';

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

/**
 * Replay keys of rows written ahead or held and not yet committed, as many times as each is
 * pending: by VM, then seq, then the exit times pending under that seq (one, nearly always; a
 * plugin may reuse a seq once its verdict has arrived, and a key may be pending twice). It holds
 * the row's own texts (the VM id its session shares, the exit time of its row), no text made for
 * the key.
 */
export class PendingKeys {
  readonly #byVm = new Map<string, Map<number, string | string[]>>();

  has(key: ReplayKey): boolean {
    const times = this.#byVm.get(key.vm)?.get(key.seq);
    if (times === undefined) return false;
    return typeof times === 'string' ? times === key.time : times.includes(key.time);
  }

  add(key: ReplayKey): void {
    let bySeq = this.#byVm.get(key.vm);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.#byVm.set(key.vm, bySeq);
    }
    const times = bySeq.get(key.seq);
    if (times === undefined) bySeq.set(key.seq, key.time);
    else if (typeof times === 'string') bySeq.set(key.seq, [times, key.time]);
    else times.push(key.time);
  }

  /** Forgets one of each: a key pending twice stays pending once. */
  forget(keys: readonly ReplayKey[]): void {
    for (const key of keys) {
      const bySeq = this.#byVm.get(key.vm);
      const times = bySeq?.get(key.seq);
      if (bySeq === undefined || times === undefined) continue;
      if (typeof times === 'string') {
        if (times !== key.time) continue;
      } else {
        const i = times.indexOf(key.time);
        if (i < 0) continue;
        times.splice(i, 1);
        if (times.length > 0) continue;
      }
      bySeq.delete(key.seq);
      // A stream of new VM ids leaves nothing behind.
      if (bySeq.size === 0) this.#byVm.delete(key.vm);
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
