/**
 * The poisoned pages kept for migration payloads (actions/poisoned-pages.ts): past the VM bound the
 * VM that reported least recently is forgotten, however its reports interleave with the others'.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PoisonedPages } from '../../actions/poisoned-pages.js';
import { RECENCY_CASES } from '../helpers/recency.js';

test('past the VM bound the least recently reporting VM is forgotten, once or after a storm of its own', () => {
  for (const { seen, goes, stays } of RECENCY_CASES) {
    const pages = new PoisonedPages({ perVm: 8, vms: 2 });
    for (const [i, vm] of [...seen, 'c'].entries()) pages.add(vm, BigInt(i) << 12n);
    const what = `${seen.join(' ')} c`;
    assert.deepEqual(pages.pages(goes), { pages: [], truncated: false }, `${what}: ${goes} forgotten`);
    assert.ok(pages.pages(stays).pages.length > 0, `${what}: ${stays} kept`);
    assert.equal(pages.forgottenVms, 1);
    assert.equal(pages.vmCount, 2);
  }
});

test('a VM past its page bound keeps its newest pages and is marked truncated; a page reported again counts once', () => {
  const pages = new PoisonedPages({ perVm: 2, vms: 4 });
  for (const gpa of [0x1000n, 0x1fffn, 0x2000n, 0x3abcn]) pages.add('a', gpa);
  assert.deepEqual(pages.pages('a'), { pages: [0x2000n, 0x3000n], truncated: true });
  pages.add('b', 0x5000n);
  pages.add('b', 0x5008n);
  assert.deepEqual(pages.pages('b'), { pages: [0x5000n], truncated: false });
});
