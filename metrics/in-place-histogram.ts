import type { Histogram, Registry } from 'prom-client';
import { invalidOption } from './checks.js';

/** One sample as prom-client's registry renders it: a series name, its labels and its value. */
interface Sample {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/**
 * A histogram without labels whose observations are counted in place: `observe` is a scan of the
 * bounds and three additions (~5 ns), where prom-client's `Histogram.observe` builds a label
 * object, validates and hashes it on every call (~120 ns), once per verdict. The registry renders
 * it like any of its own metrics: it asks a registered metric for its `name`, `help`, `type` and
 * `get()`, and writes the text format from what `get()` returns (the `_bucket` series with
 * cumulative counts and an `le` label, then `+Inf`, `_sum` and `_count`, as prom-client's own
 * histogram returns them), so the exposition is prom-client's, not written here.
 */
export class InPlaceHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: Float64Array;
  /** Observations per bucket, not cumulative; the last one is past every bound (`+Inf` only). */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(config: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    const b = config.buckets;
    for (let i = 0; i < b.length; i++) {
      const bound = b[i] as number;
      if (!Number.isFinite(bound) || (i > 0 && !(bound > (b[i - 1] as number)))) invalidOption('buckets', b);
    }
    this.name = config.name;
    this.help = config.help;
    this.#bounds = Float64Array.from(b);
    this.#counts = new Float64Array(b.length + 1);
    // The registry's own type lists its four classes; what it reads of them is described above.
    for (const r of config.registers) r.registerMetric(this as unknown as Histogram);
  }

  /** One observation of a finite `value` (the caller checks it: this is the hot path). */
  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.#counts[i] = (this.#counts[i] as number) + 1;
    this.#sum += value;
    this.#count++;
  }

  /** Every sample, as prom-client's registry renders and `getMetricsAsJSON` returns them. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const bucket = `${this.name}_bucket`;
    const values: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i] as number;
      values.push({ metricName: bucket, labels: { le: this.#bounds[i] as number }, value: cumulative });
    }
    values.push({ metricName: bucket, labels: { le: '+Inf' }, value: this.#count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.#sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.#count });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Back to no observations (prom-client's `Registry.resetMetrics`). */
  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}
