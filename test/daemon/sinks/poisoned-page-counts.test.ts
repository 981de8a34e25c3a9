/** The poisoned-page gauge's memory: bounded, and one VM inventing addresses uses up only its own share. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PoisonedPageCounts } from '../../../daemon/sinks/poisoned-page-counts.js';

test('a VM inventing pages fills its own share, and another VM’s repeated page still counts once', () => {
  const counts = new PoisonedPageCounts(20, 10);
  for (let n = 0; n < 50; n++) counts.add('flood', BigInt(n) << 12n);
  assert.equal(counts.count('flood'), 50, 'every page counted; past its share, without being remembered');
  assert.equal(counts.add('quiet', 0x7000n), 1);
  assert.equal(counts.add('quiet', 0x7000n), null, 'a repeat is not counted again');
  assert.equal(counts.count('quiet'), 1);
  // Past the bound in all, a repeat counts again: the price of the bound, paid once 2 VMs flood here.
  for (let n = 0; n < 50; n++) counts.add('flood-2', BigInt(n) << 12n);
  assert.equal(counts.add('late', 0x9000n), 1);
  assert.equal(counts.add('late', 0x9000n), 2);
});
