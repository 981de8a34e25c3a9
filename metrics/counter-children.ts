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
