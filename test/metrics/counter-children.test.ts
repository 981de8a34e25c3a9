/**
 * Counts that wait in plain numbers for the scrape (metrics/counter-children.ts DeferredCounts):
 * each series waits once however many increments it takes, a settle hands over exactly what
 * waited, and a discarded series hands over nothing, so a removed series cannot come back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { DeferredCounts } from '../../metrics/counter-children.js';
import { find } from './exposition.js';

function family() {
  const registry = new Registry();
  const counter = new Counter({ name: 'c_total', help: 'h', labelNames: ['k'], registers: [registry] });
  return { registry, counter };
}

test('a series waits once however often it is counted; a settle hands over the sum and empties', async () => {
  const { registry, counter } = family();
  const counts = new DeferredCounts();
  const a = counts.of(counter.labels({ k: 'a' }));
  const b = counts.of(counter.labels({ k: 'b' }));
  for (let i = 0; i < 1000; i++) counts.inc(a);
  counts.inc(b);
  assert.equal(counts.waiting, 2);
  assert.deepEqual(find(await registry.metrics(), 'c_total'), [], 'nothing handed over before the settle');
  counts.settle();
  assert.equal(counts.waiting, 0);
  counts.inc(a);
  counts.settle();
  counts.settle();
  const got = find(await registry.metrics(), 'c_total').map((s) => [s.labels.k, s.value]);
  assert.deepEqual(got.sort(), [
    ['a', 1001],
    ['b', 1],
  ]);
});

test('a discarded series hands over nothing: removed, it does not come back at the settle', async () => {
  const { registry, counter } = family();
  const counts = new DeferredCounts();
  const a = counts.of(counter.labels({ k: 'a' }));
  counts.inc(a);
  counts.inc(a);
  counts.discard(a);
  counter.remove({ k: 'a' });
  counts.settle();
  assert.deepEqual(find(await registry.metrics(), 'c_total'), []);
  assert.equal(counts.waiting, 0, 'released by the settle');
});
