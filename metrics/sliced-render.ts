/**
 * A registry's exposition text rendered a slice at a time, so that no single task of the event
 * loop that answers vCPUs renders more than {@link LINES_PER_SLICE} series.
 *
 * prom-client's `Registry.metrics()` renders every family in one task (its awaits are on promises
 * already resolved): at the per-VM bound, 90,371 lines held the loop for 357–1,323 ms
 * (docs/performance.md, 2026-12-05). Here the text is still prom-client's: each family's samples, a
 * slice at a time, go through the registry's own rendering of one metric
 * (`getSingleMetricAsString` of a scratch registry, given a stand-in metric whose `get()` returns
 * those samples), and the parts are put together as `metrics()` joins its families. The one thing
 * not prom-client's is cutting the family's `# HELP` and `# TYPE` lines off every part but the
 * first; a part that does not begin with them fails the rendering.
 *
 * The text shows the values of one moment, as a one-task rendering did, whatever is recorded while
 * it is written: in the first task every family is read — the small ones through `get()`, their
 * values copied; the per-VM ones (sample-family.ts) begin a reading that keeps that moment's values.
 */
import { type Counter, Registry } from 'prom-client';
import { MetricsError } from './errors.js';
import type { SampleReading } from './sample-family.js';

/** Samples rendered per task. */
export const LINES_PER_SLICE = 250;

/**
 * Text encoded into one part once it is this long (UTF-16 code units): ~25 parts at the bound
 * rather than one a slice, so each scrape that shares the rendering makes fewer writes.
 */
const PART_CHARS = 256 * 1024;

/** A rendering: the text, UTF-8, in parts written one after another, and what it cost the loop. */
export interface MetricsRendering {
  /** Encoded a slice at a time: joining 7 MB into one string or buffer would itself be a long task. */
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  /** Milliseconds the rendering's tasks took, summed: its share of the event loop, not its wall time. */
  readonly busyMs: number;
  /** The longest of those tasks, in milliseconds (a garbage collection in one counts in it). */
  readonly longestSliceMs: number;
}

/** What a registered metric's `get()` (or a histogram's `getForPromString()`) returns, as rendered. */
interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator?: string;
  readonly values?: readonly { readonly value: number }[];
}

interface Readable extends Family {
  get(): Promise<Family>;
  getForPromString?(): Promise<Family>;
  read?(): SampleReading;
}

/** One family being rendered: its header's data and where its samples come from. */
interface Source {
  readonly family: Family;
  /** Up to `max` more samples with the values read; none once all are given. */
  next(max: number): readonly { readonly value: number }[];
}

/** A family read through `get()`: the samples it returned, with their values copied at once. */
function copied(family: Family): Source {
  const samples = family.values ?? [];
  const values = samples.map((s) => s.value);
  let at = 0;
  return {
    family,
    next: (max) => {
      const to = Math.min(samples.length, at + max);
      const part = samples.slice(at, to).map((s, i) => ({ ...s, value: values[at + i] as number }));
      at = to;
      return part;
    },
  };
}

/**
 * Renders `registry` as `registry.metrics()` would, byte for byte, yielding to the event loop
 * (`setImmediate`) after every `linesPerSlice` samples. `prepare` runs first, in the task that
 * reads every value (seawall settles its waiting counts there). The registry must have the
 * Prometheus content type and no default labels (seawall's has neither). One rendering of a
 * registry at a time: a per-VM family refuses a second reading while one is open.
 */
export async function renderInSlices(
  registry: Registry,
  prepare: () => void = () => {},
  linesPerSlice = LINES_PER_SLICE,
): Promise<MetricsRendering> {
  let sliceStart = performance.now();
  const readings: SampleReading[] = [];
  try {
    prepare();
    // Called in one task; they resolve with no I/O between (as in `metrics()`), read at one moment.
    const pending = registry.getMetricsAsArray().map((m): Promise<Source> | Source => {
      const metric = m as unknown as Readable;
      if (typeof metric.read === 'function') {
        const reading = metric.read();
        readings.push(reading);
        const { name, help, type, aggregator } = metric;
        return { family: { name, help, type, aggregator }, next: (max) => reading.next(max) };
      }
      const family = typeof metric.getForPromString === 'function' ? metric.getForPromString() : metric.get();
      return family.then(copied);
    });
    let busyMs = performance.now() - sliceStart;
    let longestSliceMs = busyMs;
    const sliceEnd = () => {
      const took = performance.now() - sliceStart;
      busyMs += took;
      longestSliceMs = Math.max(longestSliceMs, took);
    };
    const sources = await Promise.all(pending);
    sliceStart = performance.now();
    const scratch = new Registry();
    const chunks: Buffer[] = [];
    let bytes = 0;
    let parts: string[] = [];
    let chars = 0;
    let lines = 0;
    const flush = () => {
      const chunk = Buffer.from(parts.join(''));
      parts = [];
      chars = 0;
      chunks.push(chunk);
      bytes += chunk.length;
    };
    for (const [f, { family, next }] of sources.entries()) {
      const header = await renderPart(scratch, family, []);
      parts.push(f === 0 ? header : `\n\n${header}`);
      for (
        let samples = next(linesPerSlice - lines);
        samples.length > 0;
        samples = next(linesPerSlice - lines)
      ) {
        const text = await renderPart(scratch, family, samples);
        if (!text.startsWith(`${header}\n`)) {
          throw new MetricsError(
            'SEAWALL_METRICS_RENDER_FAILED',
            `prom-client's text for part of ${family.name} does not begin with the family's header`,
            { family: family.name },
          );
        }
        parts.push(text.slice(header.length));
        chars += text.length - header.length;
        lines += samples.length;
        if (lines >= linesPerSlice) {
          if (chars >= PART_CHARS) flush();
          sliceEnd();
          await new Promise((resolve) => setImmediate(resolve));
          sliceStart = performance.now();
          lines = 0;
        }
      }
    }
    parts.push('\n');
    flush();
    sliceEnd();
    return { chunks, bytes, busyMs, longestSliceMs };
  } finally {
    for (const reading of readings) reading.close();
  }
}

/** prom-client's text of `family` with `samples` as its values. */
function renderPart(
  scratch: Registry,
  family: Family,
  samples: readonly { readonly value: number }[],
): Promise<string> {
  const part: Family = { ...family, values: samples };
  const metric = { name: family.name, help: family.help, type: family.type, get: async () => part };
  scratch.removeSingleMetric(family.name);
  scratch.registerMetric(metric as unknown as Counter);
  return scratch.getSingleMetricAsString(family.name);
}
