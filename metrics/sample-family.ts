import type { Counter, Registry } from 'prom-client';
import { MetricsError } from './errors.js';

/** Whether a rendering is reading a family now, and which one (every rendering has a new number). */
interface Readings {
  epoch: number;
  open: boolean;
}

/**
 * One series of a {@link SampleFamily}: its labels, as prom-client keeps them, and its value. A
 * change while a rendering reads the family keeps the value that rendering began with.
 */
export class Sample {
  readonly labels: Readonly<Record<string, string>>;
  /** The reading it was created in: a rendering leaves out series created after it began. */
  readonly born: number;
  #value = 0;
  readonly #readings: Readings;
  #savedFor = -1;
  #saved = 0;

  constructor(labels: Readonly<Record<string, string>>, readings: Readings) {
    this.labels = labels;
    this.#readings = readings;
    this.born = readings.epoch;
  }

  get value(): number {
    return this.#value;
  }

  set value(v: number) {
    this.#save();
    this.#value = v;
  }

  /** Adds `n` (the caller checks it); a {@link DeferredCounts} settles into it through this. */
  inc(n: number): void {
    this.#save();
    this.#value += n;
  }

  /** The value when reading `epoch` began. */
  valueAt(epoch: number): number {
    return this.#savedFor === epoch ? this.#saved : this.#value;
  }

  #save(): void {
    const r = this.#readings;
    if (r.open && this.#savedFor !== r.epoch) {
      this.#saved = this.#value;
      this.#savedFor = r.epoch;
    }
  }
}

/** A sample as a rendering gives it to prom-client: labels and the value it read. */
export interface SampleValue {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The family's series as they were when it began, a few at a time; {@link close} when done. */
export interface SampleReading {
  /** Up to `max` more series; fewer (none) once every one is read. */
  next(max: number): SampleValue[];
  close(): void;
}

/**
 * A counter or gauge family whose series are created, changed and removed by reference, for the
 * per-VM families, which hold up to `maxVms` × 22 series. prom-client's own families keep theirs
 * in an object keyed by the label values: every `inc()` hashes and checks its labels, a scrape
 * settles every waiting count through it, and a rendering begins with `Object.values()` over that
 * object; at 81,920 series each of those took 64–227 ms in one task (docs/performance.md,
 * 2026-12-05). Here a series is an object the caller keeps, held in a Set in creation order — the
 * order prom-client's object gives them.
 *
 * The registry renders the family like its own: it reads `name`, `help`, `type` and `get()`, and
 * writes the text format from the samples `get()` returns (as for in-place-histogram.ts), so the
 * exposition is still prom-client's. A sliced rendering (sliced-render.ts) uses {@link read}
 * instead: the values of the moment it began, without copying 80,000 of them in one task — a
 * series changed meanwhile keeps its old value for the reading, one created meanwhile is left out
 * and one removed meanwhile stays until the reading closes.
 */
export class SampleFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly aggregator = 'sum';
  readonly #samples = new Set<Sample>();
  readonly #readings: Readings = { epoch: 0, open: false };
  /** Removed while a reading was open: still in `#samples` for it, dropped when it closes. */
  readonly #removed = new Set<Sample>();

  constructor(config: { name: string; help: string; type: 'counter' | 'gauge'; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.type = config.type;
    // The registry's own type lists its four classes; what it reads of them is described above.
    for (const r of config.registers) r.registerMetric(this as unknown as Counter);
  }

  /** A new series with `labels` at 0, exported from now on (after every series created before it). */
  create(labels: Readonly<Record<string, string>>): Sample {
    const sample = new Sample(labels, this.#readings);
    this.#samples.add(sample);
    return sample;
  }

  /** Stops exporting `sample`. */
  remove(sample: Sample): void {
    if (this.#readings.open) this.#removed.add(sample);
    else this.#samples.delete(sample);
  }

  /** Series exported now. */
  get size(): number {
    return this.#samples.size - this.#removed.size;
  }

  /** Every series, in creation order, as prom-client's registry renders them. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const s of this.#samples) if (!this.#removed.has(s)) values.push(s);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Begins a reading of the values of this moment; one at a time (throws while one is open). */
  read(): SampleReading {
    const readings = this.#readings;
    if (readings.open) {
      const message = `${this.name} is already being read by another rendering`;
      throw new MetricsError('SEAWALL_METRICS_RENDER_FAILED', message, { family: this.name });
    }
    readings.open = true;
    const epoch = ++readings.epoch;
    const it = this.#samples.values();
    return {
      next: (max) => {
        const out: SampleValue[] = [];
        while (out.length < max) {
          const r = it.next();
          if (r.done === true) break;
          const s = r.value;
          if (s.born < epoch) out.push({ labels: s.labels, value: s.valueAt(epoch) });
        }
        return out;
      },
      close: () => {
        if (readings.epoch !== epoch || !readings.open) return;
        readings.open = false;
        for (const s of this.#removed) this.#samples.delete(s);
        this.#removed.clear();
      },
    };
  }

  /**
   * prom-client's `Registry.resetMetrics` (never called by seawall). Every series back to 0 rather
   * than dropped: their owners keep them, and a dropped one could never be exported again.
   */
  reset(): void {
    for (const sample of this.#samples) sample.value = 0;
  }
}
