/**
 * The poisoned pages kept for migration payloads (actions/poisoned-pages.ts): past the VM bound the
 * VM that reported least recently is forgotten, however its reports interleave with the others';
 * with a store, a payload lists the store's pages too, and says truncated whenever it may lack some.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PoisonedPages, type StoredPages, WithStoredPages } from '../../actions/poisoned-pages.js';
import { RECENCY_CASES } from '../helpers/recency.js';

test('past the VM bound the least recently reporting VM is forgotten, once or after a storm of its own', () => {
  for (const { seen, goes, stays } of RECENCY_CASES) {
    const pages = new PoisonedPages({ perVm: 8, vms: 2 });
    for (const [i, vm] of [...seen, 'c'].entries()) pages.add(vm, BigInt(i) << 12n);
    const what = `${seen.join(' ')} c`;
    // Its pages are unknown now: the list says it may lack some.
    assert.deepEqual(pages.pages(goes), { pages: [], truncated: true }, `${what}: ${goes} forgotten`);
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

test('a VM never seen, while none was forgotten, has no pages and a whole list', () => {
  const pages = new PoisonedPages({ perVm: 2, vms: 4 });
  pages.add('a', 0x1000n);
  assert.deepEqual(pages.pages('b'), { pages: [], truncated: false });
});

/** A store holding `held` pages per VM, answering as the daemon's reader does: at most `most`. */
function store(held: Record<string, bigint[]>, asked: Array<[string, number]> = []): StoredPages {
  return (vm, most) => {
    asked.push([vm, most]);
    return Promise.resolve((held[vm] ?? []).slice(0, most));
  };
}

const sorted = (l: { pages: bigint[]; truncated: boolean }) => ({
  pages: [...l.pages].sort((a, b) => (a < b ? -1 : 1)),
  truncated: l.truncated,
});

test("the store's pages and the ones in memory are listed once each, up to the bound", async () => {
  const memory = new PoisonedPages({ perVm: 3, vms: 4 });
  memory.add('a', 0x3000n); // reported since the start, perhaps not committed yet
  memory.add('a', 0x1000n);
  const asked: Array<[string, number]> = [];
  const pages = new WithStoredPages(memory, store({ a: [0x1000n, 0x2000n] }, asked), 3);
  assert.deepEqual(sorted(await pages.pages('a')), { pages: [0x1000n, 0x2000n, 0x3000n], truncated: false });
  // One more than the bound is asked for: that tells a store holding more than the bound.
  assert.deepEqual(asked, [['a', 4]]);
  // A restart: memory is empty, the store has them all.
  const fresh = new WithStoredPages(new PoisonedPages({ perVm: 3, vms: 4 }), store({ a: [1n << 12n] }), 3);
  assert.deepEqual(await fresh.pages('a'), { pages: [0x1000n], truncated: false });
});

test('past the bound, together or in the store alone, the list is cut and marked truncated', async () => {
  const memory = new PoisonedPages({ perVm: 2, vms: 4 });
  memory.add('a', 0x9000n);
  const both = new WithStoredPages(memory, store({ a: [0x1000n, 0x2000n] }), 2);
  const l = await both.pages('a');
  assert.equal(l.truncated, true);
  assert.equal(l.pages.length, 2);
  assert.ok(l.pages.includes(0x9000n), 'the newest, from memory, is kept');
  const stored = new WithStoredPages(
    new PoisonedPages({ perVm: 2, vms: 4 }),
    store({ a: [0x1000n, 0x2000n, 0x3000n] }),
    2,
  );
  assert.deepEqual(await stored.pages('a'), { pages: [0x1000n, 0x2000n], truncated: true });
});

test("a store that fails or does not answer in time leaves memory's pages, marked truncated", async () => {
  const memory = new PoisonedPages({ perVm: 4, vms: 4 });
  memory.add('a', 0x1000n);
  const failing = new WithStoredPages(memory, () => Promise.reject(new Error('reader gone')), 4);
  assert.deepEqual(await failing.pages('a'), { pages: [0x1000n], truncated: true });
  // Never answers: the wait's own bound (short here) ends it. Its timer does not keep a process
  // alive (a stopping daemon is not held up), so this test keeps the event loop alive itself.
  const silent = new WithStoredPages(memory, () => new Promise<bigint[]>(() => {}), 4, 20);
  const alive = setInterval(() => {}, 1000);
  try {
    assert.deepEqual(await silent.pages('a'), { pages: [0x1000n], truncated: true });
  } finally {
    clearInterval(alive);
  }
  // No store at all: memory alone, as without one.
  const none = new WithStoredPages(memory, () => null, 4);
  assert.deepEqual(await none.pages('a'), { pages: [0x1000n], truncated: false });
});
