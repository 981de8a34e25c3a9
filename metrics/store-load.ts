/**
 * The event store's write-ahead queue, read at each scrape rather than pushed per event: the
 * backlog as it is (`seawall_store_pending_events`), the events held in memory while the store is
 * faulty (`seawall_store_held_events`; pushed only on health changes, it lagged the events held
 * since), and the time verdicts waited at its bound (`seawall_store_backpressure_seconds_total`),
 * which the store counts as a running total in milliseconds and the counter takes as increments.
 */
import type { Counter, Gauge } from 'prom-client';

/** What {@link StoreLoadReader} reads from the store. */
export interface StoreLoad {
  /** Answered events written ahead and not yet committed. */
  readonly pendingEvents: number;
  /** Answered events held in memory because the store is faulty. */
  readonly heldEvents: number;
  /** Milliseconds the verdict path has waited, since start, because the queue was full. */
  readonly backpressureMs: number;
}

export class StoreLoadReader {
  readonly #pending: Gauge;
  readonly #held: Gauge;
  readonly #backpressure: Counter;
  #read: (() => StoreLoad) | null = null;
  #lastMs = 0;

  constructor(pending: Gauge, held: Gauge, backpressure: Counter) {
    this.#pending = pending;
    this.#held = held;
    this.#backpressure = backpressure;
  }

  watch(read: () => StoreLoad): void {
    this.#read = read;
  }

  /**
   * Before each scrape. A reading that is not a count leaves the last value exported: metrics/
   * raises nothing at scrape time, where an error would cost the scrape every other family.
   */
  collect(): void {
    if (this.#read === null) return;
    const { pendingEvents, heldEvents, backpressureMs } = this.#read();
    if (Number.isSafeInteger(pendingEvents) && pendingEvents >= 0) this.#pending.set(pendingEvents);
    if (Number.isSafeInteger(heldEvents) && heldEvents >= 0) this.#held.set(heldEvents);
    if (!(Number.isFinite(backpressureMs) && backpressureMs >= 0)) return;
    // A total below the last one comes from a source that started again from 0: all of it is new.
    const added = backpressureMs >= this.#lastMs ? backpressureMs - this.#lastMs : backpressureMs;
    if (added > 0) this.#backpressure.inc(added / 1000);
    this.#lastMs = backpressureMs;
  }
}
