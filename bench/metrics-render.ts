/**
 * What one /metrics rendering costs the event loop that answers vCPUs when the per-VM series are
 * at their bound: a storm of made-up VM ids (one session each) fills `maxVms` VMs' series through
 * the real SeawallMetrics API, and before each rendering every one of those series is counted
 * again (so the rendering settles them all); each rendering is timed while a turn of the event
 * loop is counted each time it gets one. Printed per rendering: the longest time between two
 * turns (the longest task the rendering held every verdict for) and the 99th percentile of those
 * times, the time from the call to the rendering, the time its own tasks took (summed) and the
 * longest of them, the lines and bytes. Garbage collections count wherever they fall.
 *
 *   node --import tsx bench/metrics-render.ts [--vms N] [--combos N] [--runs N] [--json]
 *
 * `--combos` is how many kind × severity series each VM has (1–20; 20, the default, is the worst
 * case of docs/metrics.md, 23 series a VM with its poisoned-page gauge and both fallback counters).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_VMS, MEMORY_ERROR_KINDS, SEVERITIES, SeawallMetrics } from '../metrics/index.js';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: String(DEFAULT_MAX_VMS) },
    combos: { type: 'string', default: String(MEMORY_ERROR_KINDS.length * SEVERITIES.length) },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const VMS = Number(values.vms);
const COMBOS = Number(values.combos);
const RUNS = Number(values.runs);
const combos = MEMORY_ERROR_KINDS.flatMap((k) => SEVERITIES.map((s) => [k, s] as const)).slice(0, COMBOS);

interface Run {
  longestMs: number;
  /** The 99th percentile of the times between two turns. */
  p99Ms: number;
  totalMs: number;
  /** The rendering's own tasks, summed (what the endpoint's pacing counts). */
  busyMs: number;
  /** The longest of them. */
  longestSliceMs: number;
  lines: number;
  bytes: number;
}

/**
 * A storm: every VM (connected the first time) hits each of its kind × severity series, and
 * reports its poisoned pages and a fallback of each kind (replayed, and answered late).
 */
function storm(metrics: SeawallMetrics, first: boolean): void {
  for (let v = 0; v < VMS; v++) {
    const vm = `vm-${v.toString(16).padStart(8, '0')}-made-up`;
    if (first) metrics.vmConnected(vm);
    for (const [kind, severity] of combos) metrics.memoryError(vm, kind, severity);
    metrics.setPoisonedPages(vm, 1 + (v % 7));
    metrics.fallbackReported(vm, 1, 'replay');
    metrics.fallbackReported(vm, 1, 'applied');
    metrics.action('inject', 'default');
  }
}

async function render(metrics: SeawallMetrics): Promise<Run> {
  let last = performance.now();
  const gaps: number[] = [];
  let busy = true;
  const turn = () => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    if (busy) setImmediate(turn);
  };
  setImmediate(turn);
  const start = performance.now();
  last = start;
  const rendering = await metrics.render();
  const totalMs = performance.now() - start;
  // The turn after the last task, so that it is counted too.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  busy = false;
  let lines = 0;
  for (const chunk of rendering.chunks)
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
  gaps.sort((a, b) => a - b);
  const longestMs = gaps[gaps.length - 1] ?? 0;
  const p99Ms = gaps[Math.floor(0.99 * (gaps.length - 1))] ?? 0;
  return {
    longestMs,
    p99Ms,
    totalMs,
    busyMs: rendering.busyMs,
    longestSliceMs: rendering.longestSliceMs,
    lines,
    bytes: rendering.bytes,
  };
}

const metrics = new SeawallMetrics({ version: 'bench' });
const runs: Run[] = [];
for (let k = 0; k < RUNS; k++) {
  storm(metrics, k === 0);
  runs.push(await render(metrics));
}
if (values.json) console.log(JSON.stringify({ vms: VMS, combos: COMBOS, runs }));
else {
  const r0 = runs[0] as Run;
  console.log(
    `${VMS.toLocaleString('en')} VMs × ${COMBOS} kind × severity series: ` +
      `${r0.lines.toLocaleString('en')} lines, ${(r0.bytes / 1e6).toFixed(1)} MB; ${RUNS} renderings`,
  );
  const fmt = (f: (r: Run) => number) => runs.map((r) => f(r).toFixed(1)).join(' / ');
  console.log(`longest task ${fmt((r) => r.longestMs)} ms`);
  console.log(`p99 task     ${fmt((r) => r.p99Ms)} ms`);
  console.log(`call to text ${fmt((r) => r.totalMs)} ms`);
  console.log(`its tasks    ${fmt((r) => r.busyMs)} ms, the longest ${fmt((r) => r.longestSliceMs)} ms`);
}
