import type { Counter } from 'prom-client';
import { type BoundedLabelValues, rejectClosedLabel } from './label-values.js';

/**
 * Cached prom-client children of one-label counters, so recording is a Map lookup and an
 * increment rather than a label-object hash per call.
 */

/**
 * Children for every value of a closed label, created at 0 up front: `increase()` in the alert
 * rules then sees the first event, and a lookup miss can only mean a value outside the set.
 */
export class ClosedCounterChildren<V extends string> {
  readonly #label: string;
  readonly #values: readonly V[];
  readonly #children = new Map<string, Counter.Internal>();

  constructor(family: Counter<string>, label: string, values: readonly V[]) {
    this.#label = label;
    this.#values = values;
    for (const value of values) {
      const child = family.labels({ [label]: value });
      child.inc(0);
      this.#children.set(value, child);
    }
  }

  /** The child for `value`; throws `SEAWALL_METRICS_INVALID_LABEL` for a value outside the set. */
  get(value: V): Counter.Internal {
    return this.#children.get(value) ?? rejectClosedLabel(this.#label, this.#values, value);
  }
}

/**
 * Children for an open label whose distinct values are bounded by a {@link BoundedLabelValues}.
 * Values folded into `other` are not cached, so the cache stays as bounded as the label.
 */
export class OpenCounterChildren {
  readonly #family: Counter<string>;
  readonly #bound: BoundedLabelValues;
  readonly #children = new Map<string, Counter.Internal>();

  constructor(family: Counter<string>, bound: BoundedLabelValues) {
    this.#family = family;
    this.#bound = bound;
  }

  /** The child for `value`, or for `other` once the label's bound is reached. */
  get(value: string): Counter.Internal {
    const cached = this.#children.get(value);
    if (cached !== undefined) return cached;
    const exported = this.#bound.resolve(value);
    const child = this.#family.labels({ [this.#bound.label]: exported });
    if (exported === value) this.#children.set(value, child);
    return child;
  }
}

/** Where a {@link DeferredCount} settles: a prom-client child, or a sample-family.ts series. */
export interface Incrementable {
  inc(n: number): void;
}

/** One series whose increments wait in a plain number for the next {@link DeferredCounts.settle}. */
export interface DeferredCount<C extends Incrementable = Incrementable> {
  readonly child: C;
  pending: number;
}

/**
 * Counts taken once per event, added up in plain numbers and handed to prom-client when scraped:
 * a prom-client child hashes its label object on every `inc()` (~0.2 µs), which at hundreds of
 * thousands of events a second is most of what the metrics cost the verdict path. A scrape settles
 * everything first, so it never sees a count short; a series removed (TTL, eviction) drops what it
 * had waiting with it, exactly as if it had been added and then removed.
 */
export class DeferredCounts {
  #dirty: DeferredCount[] = [];

  /** Series with increments waiting (or discarded since the last settle). */
  get waiting(): number {
    return this.#dirty.length;
  }

  of<C extends Incrementable>(child: C): DeferredCount<C> {
    return { child, pending: 0 };
  }

  /** One more for `count`. Hot path: an increment, and a push the first time since a settle. */
  inc(count: DeferredCount): void {
    if (count.pending++ === 0) this.#dirty.push(count);
  }

  /** A series about to be removed: what it had waiting goes with it. */
  discard(count: DeferredCount): void {
    count.pending = 0;
  }

  /** Hands every waiting increment to prom-client. */
  settle(): void {
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const count of dirty) {
      if (count.pending > 0) count.child.inc(count.pending);
      count.pending = 0;
    }
  }
}
