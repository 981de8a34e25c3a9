/** Latency samples and their percentiles; a bounded reservoir keeps memory flat on long runs. */
import { rng } from './event-mix.js';

export class LatencyRecorder {
  readonly #samples: Float64Array;
  #count = 0;
  #seen = 0;
  readonly #random = rng(7);

  constructor(capacity = 1_000_000) {
    this.#samples = new Float64Array(capacity);
  }

  /** Records one latency in nanoseconds. */
  add(ns: bigint | number): void {
    const v = Number(ns);
    this.#seen++;
    if (this.#count < this.#samples.length) {
      this.#samples[this.#count++] = v;
    } else {
      const j = Math.floor(this.#random() * this.#seen);
      if (j < this.#samples.length) this.#samples[j] = v;
    }
  }

  get count(): number {
    return this.#seen;
  }

  /** Percentiles in microseconds, e.g. [50, 99, 99.9]. */
  percentiles(ps: readonly number[]): Record<string, number> {
    const sorted = this.#samples.slice(0, this.#count).sort();
    const out: Record<string, number> = {};
    for (const p of ps) {
      const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
      out[`p${p}`] = sorted.length === 0 ? 0 : Math.round((sorted[i] as number) / 10) / 100;
    }
    return out;
  }
}
