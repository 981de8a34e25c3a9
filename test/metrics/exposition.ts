// Reads sample values out of scraped exposition text, so tests assert on what Prometheus would see.
import type { MetricsRendering } from '../../metrics/index.js';

/** Unescapes a label value of the text format (\\, \" and \n). */
function unescapeLabelValue(value: string): string {
  return value.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

function parseLabels(body: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[m[1]!] = unescapeLabelValue(m[2]!);
  }
  return labels;
}

export interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Every sample line of `text`. */
export function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable exposition line: ${line}`);
    out.push({ name: m[1]!, labels: parseLabels(m[2] ?? ''), value: Number(m[3]) });
  }
  return out;
}

/** Samples of metric `name` whose labels include `match`. */
export function find(text: string, name: string, match: Record<string, string> = {}): Sample[] {
  return samples(text).filter(
    (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v),
  );
}

/** The value of the single sample of `name` with exactly the labels `labels`, or undefined. */
export function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.keys(labels).length;
  const hits = find(text, name, labels).filter((s) => Object.keys(s.labels).length === want);
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** A rendering of `text` in one part, as a stand-in metrics source returns it; `busyMs` its tasks' time. */
export function rendered(text: string, busyMs = 0): MetricsRendering {
  const chunk = Buffer.from(text);
  return { chunks: [chunk], bytes: chunk.length, busyMs, longestSliceMs: busyMs };
}
