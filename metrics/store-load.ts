/**
 * The event store's write-ahead queue, read at each scrape rather than pushed per event: the
 * backlog as it is (`seawall_store_pending_events`) and the time verdicts waited at its bound
 * (`seawall_store_backpressure_seconds_total`), which the store counts as a running total in
 * milliseconds and the counter takes as increments.
 */
import type { Counter, Gauge } from 'prom-client';

/** What {@link StoreLoadReader} reads from the store. */
export interface StoreLoad {
  /** Answered events written ahead and not yet committed. */
  readonly pendingEvents: number;
  /** Milliseconds the verdict path has waited, since start, because the queue was full. */
  readonly backpressureMs: number;
}

export class StoreLoadReader {
  readonly #pending: Gauge;
  readonly #backpressure: Counter;
  #read: (() => StoreLoad) | null = null;
  #lastMs = 0;

  constructor(pending: Gauge, backpressure: Counter) {
    this.#pending = pending;
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
    const { pendingEvents, backpressureMs } = this.#read();
    if (Number.isSafeInteger(pendingEvents) && pendingEvents >= 0) this.#pending.set(pendingEvents);
    if (!(Number.isFinite(backpressureMs) && backpressureMs >= 0)) return;
    // A total below the last one comes from a source that started again from 0: all of it is new.
    const added = backpressureMs >= this.#lastMs ? backpressureMs - this.#lastMs : backpressureMs;
    if (added > 0) this.#backpressure.inc(added / 1000);
    this.#lastMs = backpressureMs;
  }
}
