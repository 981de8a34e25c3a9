/** Prints the socket benchmark's figures and every goal with its measured value and met / NOT met. */

/** One event in flight: medians over the interleaved rounds, µs, and their [min, max]. */
export interface Latency {
  p50: number;
  p99: number;
  p999: number;
  p50Spread: [number, number];
  p99Spread: [number, number];
  p999Spread: [number, number];
}

export interface Row extends Latency {
  name: string;
  /** Median over the interleaved throughput rounds, and its [min, max]. */
  perSecond: number;
  perSecondSpread: [number, number];
  /** The same latency with the client and the target's event loop on one CPU; absent without taskset. */
  oneCpu?: Latency;
}

export interface Goal {
  what: string;
  value: number;
  unit: string;
  /** Met when value ≤ max (< max when `strict`), or ≥ min. */
  max?: number;
  min?: number;
  /** The bound is strict: the issue's "< 100 MB", not "≤". */
  strict?: boolean;
  /** Why the figure does not judge the goal (printed instead of met / NOT met; JSON's met: null). */
  notMeasured?: string;
}

const met = (g: Goal): boolean =>
  (g.max === undefined || (g.strict ? g.value < g.max : g.value <= g.max)) &&
  (g.min === undefined || g.value >= g.min);

export const num = (v: number, digits = 1): string =>
  v >= 1000 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);

export function printReport(r: {
  /** Lines printed under the title: how the targets were run. */
  header: string[];
  rows: Row[];
  goals: Goal[];
  notes: string[];
  json: boolean;
}): void {
  const out = (s: string) => process.stdout.write(`${s}\n`);
  if (r.json) {
    const judged = r.goals.map((g) => (g.notMeasured ? null : met(g)));
    out(JSON.stringify({ date: new Date().toISOString(), ...r, met: judged }, null, 2));
    return;
  }
  const base = r.rows[0] as Row;
  out(`seawall socket benchmark, ${new Date().toISOString()}`);
  for (const h of r.header) out(h);
  out('');
  out('| target | p50 µs | p99 µs | p99.9 µs | verdicts/s (256 in flight) |');
  out('|---|---|---|---|---|');
  const cell = (v: number, s: [number, number], b: number) =>
    `${num(v)} (${num(s[0])}–${num(s[1])}) ×${(v / b).toFixed(1)}`;
  const latency = (l: Latency, b: Latency) =>
    `${cell(l.p50, l.p50Spread, b.p50)} | ${cell(l.p99, l.p99Spread, b.p99)} | ${cell(l.p999, l.p999Spread, b.p999)}`;
  for (const row of r.rows) {
    out(
      `| ${row.name} | ${latency(row, base)} | ` +
        `${num(row.perSecond)} (${num(row.perSecondSpread[0])}–${num(row.perSecondSpread[1])}) ×${(row.perSecond / base.perSecond).toFixed(3)} |`,
    );
  }
  if (base.oneCpu) {
    out('');
    out('One event in flight, the client and the target’s event loop on one CPU:');
    out('');
    out('| target | p50 µs | p99 µs | p99.9 µs |');
    out('|---|---|---|---|');
    for (const row of r.rows) if (row.oneCpu) out(`| ${row.name} | ${latency(row.oneCpu, base.oneCpu)} |`);
  }
  out('');
  out('| goal | measured | bound | |');
  out('|---|---|---|---|');
  for (const g of r.goals) {
    const bound =
      g.max !== undefined
        ? `${g.strict ? '<' : '≤'} ${num(g.max)} ${g.unit}`
        : `≥ ${num(g.min as number)} ${g.unit}`;
    out(
      `| ${g.what} | ${num(g.value, 2)} ${g.unit} | ${bound} | ${g.notMeasured ? `not measured (${g.notMeasured})` : met(g) ? 'met' : 'NOT met'} |`,
    );
  }
  for (const n of r.notes) out(`\n${n}`);
}

/** The median of `xs`. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** The least and the largest of `xs`. */
export const spread = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];
