import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { InPlaceHistogram } from '../../metrics/in-place-histogram.js';
import { isMetricsError } from '../../metrics/index.js';
import { VERDICT_LATENCY_BUCKETS } from '../../metrics/metric-families.js';

const NAME = 'seawall_test_latency_seconds';
const HELP = 'A latency, for the test.';

/** The same observations through prom-client's Histogram and through InPlaceHistogram. */
function both(values: readonly number[], buckets: readonly number[] = VERDICT_LATENCY_BUCKETS) {
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Histogram({ name: NAME, help: HELP, buckets: [...buckets], registers: [theirs] });
  const inPlace = new InPlaceHistogram({ name: NAME, help: HELP, buckets, registers: [ours] });
  for (const v of values) {
    reference.observe(v);
    inPlace.observe(v);
  }
  return { theirs, ours, inPlace };
}

describe('InPlaceHistogram', () => {
  it("renders exactly as prom-client's own histogram, bounds, overflow and zero included", async () => {
    // Every bound exactly (le is inclusive), just past it, zero, and past the last bound.
    const values = [0, 2e-6, 7.3e-5, 3, 1e9];
    for (const b of VERDICT_LATENCY_BUCKETS) values.push(b, b * 1.0000001);
    for (let i = 0; i < 1000; i++) values.push((i * 37) % 997 === 0 ? 0.4 : (i % 50) * 1e-5);
    const { theirs, ours } = both(values);
    const text = await ours.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(text, /_bucket\{le="\+Inf"\} 1037\n/);
    // As JSON too (prom-client adds an empty exemplar to each bucket, which is left out here).
    const samples = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({
        ...m,
        values: m.values.map((v) => ({
          value: v.value,
          labels: v.labels,
          name: (v as { metricName?: string }).metricName,
        })),
      }));
    assert.deepEqual(await samples(ours), await samples(theirs));
  });

  it('renders every bucket at 0 before the first observation', async () => {
    const { theirs, ours } = both([]);
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it("is reset by the registry's resetMetrics, as prom-client's are", async () => {
    const { theirs, ours, inPlace } = both([1e-5, 0.2, 2]);
    theirs.resetMetrics();
    ours.resetMetrics();
    // prom-client's reset forgets the series; ours keeps them at 0, which a first observation
    // after the reset makes the same again.
    inPlace.observe(4e-5);
    (theirs.getSingleMetric(NAME) as Histogram).observe(4e-5);
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('refuses buckets that are not finite and increasing', () => {
    for (const buckets of [[1, 1], [2, 1], [1, Number.POSITIVE_INFINITY], [Number.NaN]]) {
      assert.throws(
        () => new InPlaceHistogram({ name: NAME, help: HELP, buckets, registers: [] }),
        (err: unknown) => isMetricsError(err) && err.code === 'SEAWALL_METRICS_INVALID_OPTION',
        JSON.stringify(buckets),
      );
    }
  });

  it('refuses a second metric of its name in one registry', () => {
    const r = new Registry();
    new InPlaceHistogram({ name: NAME, help: HELP, buckets: [1], registers: [r] });
    assert.throws(() => new Histogram({ name: NAME, help: HELP, registers: [r] }), /already been registered/);
  });
});
