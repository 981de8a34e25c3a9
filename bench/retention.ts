/**
 * What a retention pass costs the event loop that answers verdicts: a store of generated storm
 * rows (bench/storm-rows.ts) over its size bound by half, pruned by `Retention` as shipped (on
 * the retention thread, in slices of about 2 ms) and, as the baseline in the same run, by the
 * same pass on the event loop's own connection with no time bound (5,000-row chunks and one
 * vacuum: how retention ran before). A `setImmediate` ticker records every gap in the event loop
 * meanwhile: the longest is the longest a verdict would have waited. Each variant prunes its own
 * copy of one file; the variants alternate.
 * Usage: node --import tsx bench/retention.ts [--rows N] [--runs R] [--json]
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EventStore, prune, Retention, type RetentionRun, valuesOfParams } from '../store/index.js';
import { median } from './report.js';
import { stormRow } from './storm-rows.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '300000' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const RUNS = Number(values.runs);
const VARIANTS: {
  name: string;
  pass: (store: EventStore, maxBytes: number) => Promise<RetentionRun | null>;
}[] = [
  {
    name: 'retention thread, ~2 ms slices (as shipped)',
    pass: async (store, maxBytes) => {
      const retention = new Retention(store, { maxBytes });
      const run = await retention.run();
      await retention.stop();
      return run;
    },
  },
  {
    name: 'event loop, 5,000-row chunks, one vacuum (before)',
    pass: async (store, maxBytes) => {
      const opts = { cutoffMs: Date.now() - 90 * 86_400_000, maxBytes, chunkRows: 5000 };
      // Yielding to the event loop between chunks, as the pass on the event loop did.
      const pause = () => new Promise<void>((resolve) => setImmediate(resolve));
      const env = { clock: () => performance.now(), pause, stopped: () => false };
      return prune(store.db, { ...opts, sliceMs: Number.POSITIVE_INFINITY }, env);
    },
  },
];

interface Run {
  longestGapMs: number;
  gapsOver5Ms: number;
  passMs: number;
  deleted: number;
  slices: number;
}

/** Prunes a copy of `source` to half its data and watches the event loop meanwhile. */
async function measure(source: string, copy: string, variant: (typeof VARIANTS)[number]): Promise<Run> {
  copyFileSync(source, copy);
  const store = new EventStore({ path: copy });
  const maxBytes = Math.floor(store.queries.usedBytes() / 2);
  let longestGapMs = 0;
  let gapsOver5Ms = 0;
  let last = performance.now();
  let ticking = true;
  const tick = () => {
    const now = performance.now();
    longestGapMs = Math.max(longestGapMs, now - last);
    if (now - last > 5) gapsOver5Ms++;
    last = now;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  const run = await variant.pass(store, maxBytes);
  const passMs = performance.now() - start;
  ticking = false;
  store.close();
  if (run === null) throw new Error('retention failed');
  return {
    longestGapMs,
    gapsOver5Ms,
    passMs,
    deleted: run.deletedBySize,
    slices: run.slices,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'seawall-bench-retention-'));
try {
  const source = join(dir, 'source.sqlite');
  const store = new EventStore({ path: source });
  store.recovered(); // as a daemon's start: nothing left to recover, no index for older lines
  const rows = Array.from({ length: ROWS }, (_, i) => valuesOfParams(stormRow(i, store.bootId, 32, 256)));
  for (let i = 0; i < ROWS; i += 5000) store.appendRows(rows.slice(i, i + 5000));
  store.close(); // checkpoints: the copies need only the main file
  const runs = VARIANTS.map(() => [] as Run[]);
  for (let r = 0; r < RUNS; r++)
    for (const [i, v] of VARIANTS.entries())
      runs[i]?.push(await measure(source, join(dir, `copy-${r}-${i}.sqlite`), v));
  const results = VARIANTS.map((v, i) => {
    const rs = runs[i] as Run[];
    return {
      variant: v.name,
      longestGapMs: median(rs.map((x) => x.longestGapMs)),
      longestGapSpread: [
        Math.min(...rs.map((x) => x.longestGapMs)),
        Math.max(...rs.map((x) => x.longestGapMs)),
      ],
      gapsOver5Ms: median(rs.map((x) => x.gapsOver5Ms)),
      passMs: median(rs.map((x) => x.passMs)),
      deleted: median(rs.map((x) => x.deleted)),
      slices: median(rs.map((x) => x.slices)),
    };
  });
  if (values.json) console.log(JSON.stringify({ rows: ROWS, runs: RUNS, results }));
  else {
    console.log(`${ROWS.toLocaleString('en')} events, pruned to half their size; median of ${RUNS} runs`);
    for (const x of results)
      console.log(
        `${x.variant}: longest event-loop gap ${x.longestGapMs.toFixed(1)} ms ` +
          `(${x.longestGapSpread.map((g) => g.toFixed(1)).join('–')}), ${x.gapsOver5Ms} gaps over 5 ms, ` +
          `pass ${x.passMs.toFixed(0)} ms, ${x.deleted.toLocaleString('en')} events deleted in ${x.slices} slices`,
      );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
