/**
 * A rendering sliced across tasks of the event loop: its text is prom-client's one-shot rendering
 * of the same registry, byte for byte; the loop gets turns while it runs; and the values are those
 * of the moment it began, whatever is recorded meanwhile.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import {
  LINES_PER_SLICE,
  MEMORY_ERROR_KINDS,
  type MetricsRendering,
  renderInSlices,
  SEVERITIES,
  SeawallMetrics,
} from '../../metrics/index.js';
import { createMetricFamilies } from '../../metrics/metric-families.js';
import { SampleFamily } from '../../metrics/sample-family.js';
import { value } from './exposition.js';

const text = (r: MetricsRendering) => Buffer.concat(r.chunks).toString();

/** seawall's families and prom-client's own, with enough series that every family spans slices. */
function busyRegistry(): Registry {
  const registry = new Registry();
  const f = createMetricFamilies(registry);
  for (let v = 0; v < 1_000; v++) {
    const vm = `vm-${v}`;
    for (const [i, kind] of MEMORY_ERROR_KINDS.entries()) {
      f.memoryErrors.create({ vm, kind, severity: SEVERITIES[(v + i) % SEVERITIES.length] as string }).inc(v);
    }
    f.poisonedPages.create({ vm }).value = v % 5;
    if (v % 3 === 0) f.fallbackReported.create({ vm }).inc(1);
  }
  for (let r = 0; r < 40; r++) f.actions.labels({ action: 'inject', rule: `r${r}` }).inc(r + 1);
  f.verdictLatency.observe(0.00003);
  f.verdictLatency.observe(2);
  f.buildInfo.set({ version: '1.2.3', node_version: 'v20' }, 1);
  // Label values the text format escapes, an empty labelled family, and prom-client's histogram
  // (rendered from `getForPromString`) and summary.
  const odd = new Gauge({
    name: 'odd',
    help: 'a help with \\ and\nnewline',
    labelNames: ['x'],
    registers: [registry],
  });
  odd.set({ x: 'quote " backslash \\ newline \n' }, -1.5);
  odd.set({ x: 'inf' }, Number.POSITIVE_INFINITY);
  new Counter({ name: 'empty_total', help: 'no series', labelNames: ['y'], registers: [registry] });
  const h = new Histogram({
    name: 'h_seconds',
    help: 'h',
    labelNames: ['p'],
    buckets: [0.1, 1],
    registers: [registry],
  });
  for (let p = 0; p < 30; p++) h.observe({ p: `p${p}` }, p / 10);
  const s = new Summary({ name: 's', help: 's', percentiles: [0.5], registers: [registry] });
  s.observe(3);
  return registry;
}

describe('renderInSlices', () => {
  it("renders prom-client's one-shot text byte for byte, whatever the slice", async () => {
    const registry = busyRegistry();
    const oneShot = await registry.metrics();
    for (const lines of [1, 7, 64, LINES_PER_SLICE, 100_000]) {
      const r = await renderInSlices(registry, undefined, lines);
      assert.equal(text(r), oneShot, `${lines} lines a slice`);
      assert.equal(r.bytes, Buffer.byteLength(oneShot));
      if (lines <= LINES_PER_SLICE)
        assert.ok(r.chunks.length > 1, `${lines}: the text in more than one part`);
      assert.ok(r.busyMs >= 0);
    }
    assert.equal(text(await renderInSlices(new Registry())), await new Registry().metrics());
  });

  it("renders a per-VM family as prom-client's own counter and gauge with the same series", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const counter = new SampleFamily({ name: 'c_total', help: 'c', type: 'counter', registers: [ours] });
    const gauge = new SampleFamily({ name: 'g', help: 'g', type: 'gauge', registers: [ours] });
    const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['vm', 'kind'], registers: [theirs] });
    const g = new Gauge({ name: 'g', help: 'g', labelNames: ['vm'], registers: [theirs] });
    for (let v = 0; v < 20; v++) {
      counter.create({ vm: `v"${v}`, kind: 'sea' }).inc(v + 0.5);
      c.labels({ vm: `v"${v}`, kind: 'sea' }).inc(v + 0.5);
      gauge.create({ vm: `v${v}` }).value = v;
      g.labels({ vm: `v${v}` }).set(v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.equal(text(await renderInSlices(ours, undefined, 3)), await theirs.metrics());
  });

  it('gives the event loop turns while it renders', async () => {
    const m = new SeawallMetrics({ defaultMetrics: false });
    for (let v = 0; v < 2 * LINES_PER_SLICE; v++) m.memoryError(`vm-${v}`, 'sea', 'uer');
    let rendered = false;
    let turnDuringRendering = false;
    const rendering = m.metricsText().then((t) => {
      rendered = true;
      return t;
    });
    setImmediate(() => {
      turnDuringRendering = !rendered;
    });
    const t = await rendering;
    assert.equal(value(t, 'seawall_memory_errors_total', { vm: 'vm-0', kind: 'sea', severity: 'uer' }), 1);
    assert.ok(turnDuringRendering, 'a callback queued after the rendering began ran before it ended');
  });

  it('shows the values of the moment it began, whatever is recorded, removed or added meanwhile', async () => {
    const clock = { ms: 1_000_000 };
    const m = new SeawallMetrics({ defaultMetrics: false, now: () => clock.ms, vmSeriesTtlSeconds: 1 });
    const vms = 3 * LINES_PER_SLICE;
    for (let v = 0; v < vms; v++) {
      m.vmConnected(`vm-${v}`);
      m.memoryError(`vm-${v}`, 'sea', 'uer');
      m.setPoisonedPages(`vm-${v}`, 1);
    }
    m.vmDeparted('vm-0');
    const before = await m.metricsText();
    const rendering = m.metricsText();
    // While it renders: a count settled, a gauge set, a VM swept away, a new VM; both the first
    // and the last series in the families' order.
    let finished = false;
    let changedWhileRendering = false;
    setImmediate(() => {
      changedWhileRendering = !finished;
      m.memoryError(`vm-${vms - 1}`, 'sea', 'uer');
      m.setPoisonedPages(`vm-${vms - 1}`, 7);
      clock.ms += 2_000;
      assert.equal(m.sweep(), 1, 'vm-0 swept');
      m.memoryError('vm-new', 'sigbus', 'unknown');
    });
    assert.equal(
      await rendering.finally(() => {
        finished = true;
      }),
      before,
    );
    assert.ok(changedWhileRendering, 'the changes came while it rendered');
    const after = await m.metricsText();
    const last = `vm-${vms - 1}`;
    assert.equal(value(after, 'seawall_memory_errors_total', { vm: last, kind: 'sea', severity: 'uer' }), 2);
    assert.equal(value(after, 'seawall_poisoned_pages', { vm: last }), 7);
    assert.equal(value(after, 'seawall_poisoned_pages', { vm: 'vm-0' }), undefined);
    assert.equal(
      value(after, 'seawall_memory_errors_total', { vm: 'vm-new', kind: 'sigbus', severity: 'unknown' }),
      1,
    );
  });

  it('renders one at a time: renderings asked for together each get the whole text', async () => {
    const m = new SeawallMetrics({ defaultMetrics: false });
    for (let v = 0; v < 2 * LINES_PER_SLICE; v++) m.memoryError(`vm-${v}`, 'sea', 'uer');
    const [a, b] = await Promise.all([m.metricsText(), m.metricsText()]);
    assert.equal(a, b);
  });
});
