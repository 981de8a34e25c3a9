/**
 * The event store's write-ahead queue, read at each scrape rather than pushed per event: the
 * backlog as it is (`seawall_store_pending_events`), the events held in memory while the store is
 * faulty (`seawall_store_held_events`; pushed only on health changes, it lagged the events held
 * since), and the time verdicts waited at its bound (`seawall_store_backpressure_seconds_total`),
 * which the store counts as a running total in milliseconds and the counter takes as increments.
 * The updates held are read the same way (`seawall_store_held_updates`), and what was dropped past
 * the memory bounds as running totals too (`seawall_store_lost_total{what="events"|"updates"}`),
 * and the times the bound stopped reading the VMs with the most of the backlog
 * (`seawall_store_session_holds_total`).
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
  /** APPLIED results and session, action and policy rows held because the store is faulty. */
  readonly heldUpdates: number;
  /** Held events dropped past the bound, since start. */
  readonly lostEvents: number;
  /** Held updates dropped past the bound, since start. */
  readonly lostUpdates: number;
  /** Sessions, since start, the store stopped reading at half its bound (each held session counts once). */
  readonly sessionHolds: number;
}

/** The families a {@link StoreLoadReader} keeps. */
export interface StoreLoadFamilies {
  readonly pending: Gauge;
  readonly held: Gauge;
  readonly heldUpdates: Gauge;
  readonly backpressure: Counter;
  readonly lost: Counter<'what'>;
  readonly sessionHolds: Counter;
}

/** A running total taken as increments: a total below the last comes from a source started again from 0. */
class Increments {
  #last = 0;

  /** What `total` adds since the last reading; 0 for a reading that is not a finite number ≥ 0. */
  added(total: number): number {
    if (!(Number.isFinite(total) && total >= 0)) return 0;
    const added = total >= this.#last ? total - this.#last : total;
    this.#last = total;
    return added;
  }
}

export class StoreLoadReader {
  readonly #f: StoreLoadFamilies;
  readonly #lostEvents: Counter.Internal;
  readonly #lostUpdates: Counter.Internal;
  #read: (() => StoreLoad) | null = null;
  readonly #waited = new Increments();
  readonly #eventsLost = new Increments();
  readonly #updatesLost = new Increments();
  readonly #holds = new Increments();

  constructor(families: StoreLoadFamilies) {
    this.#f = families;
    // Exported at 0 from start, so increase() sees the first loss.
    this.#lostEvents = families.lost.labels({ what: 'events' });
    this.#lostUpdates = families.lost.labels({ what: 'updates' });
    this.#lostEvents.inc(0);
    this.#lostUpdates.inc(0);
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
    const load = this.#read();
    const gauge = (g: Gauge, n: number) => {
      if (Number.isSafeInteger(n) && n >= 0) g.set(n);
    };
    gauge(this.#f.pending, load.pendingEvents);
    gauge(this.#f.held, load.heldEvents);
    gauge(this.#f.heldUpdates, load.heldUpdates);
    const waited = this.#waited.added(load.backpressureMs);
    if (waited > 0) this.#f.backpressure.inc(waited / 1000);
    const events = this.#eventsLost.added(load.lostEvents);
    if (events > 0) this.#lostEvents.inc(events);
    const updates = this.#updatesLost.added(load.lostUpdates);
    if (updates > 0) this.#lostUpdates.inc(updates);
    const holds = this.#holds.added(load.sessionHolds);
    if (holds > 0) this.#f.sessionHolds.inc(holds);
  }
}
