import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JournalQueue } from '../../systemd/journal-queue.js';

/**
 * journal.ts's rule for a per-event entry (`vm`): past `bound` waiting, it takes the place of the
 * oldest of a VM holding more than its own, or is dropped. Returns what was dropped, if anything.
 */
function offer(q: JournalQueue<string>, bound: number, item: string, vm?: string): string | undefined {
  if (q.length < bound) {
    q.push(item, vm);
    return undefined;
  }
  const dropped = vm === undefined ? undefined : q.dropForFewer(vm);
  if (dropped === undefined) return item;
  q.push(item, vm);
  return dropped;
}

function drain(q: JournalQueue<string>): string[] {
  const out: string[] = [];
  for (let item = q.shift(); item !== undefined; item = q.shift()) out.push(item);
  return out;
}

test("past the bound, any number of floods leave a quiet VM's few entries their places", () => {
  const q = new JournalQueue<string>();
  let dropped = 0;
  for (const vm of ['a', 'b', 'c'])
    for (let i = 0; i < 1000; i++) if (offer(q, 512, `${vm}${i}`, vm) !== undefined) dropped++;
  for (let i = 0; i < 20; i++) if (offer(q, 512, `quiet${i}`, 'quiet') !== undefined) dropped++;
  assert.equal(q.length, 512);
  assert.equal(dropped, 3020 - 512, 'one entry dropped for each one past the bound');
  assert.equal(q.heldBy('quiet'), 20);
  const floods = ['a', 'b', 'c'].map((vm) => q.heldBy(vm));
  assert.equal(
    floods.reduce((x, y) => x + y),
    492,
  );
  assert.ok(Math.max(...floods) - Math.min(...floods) <= 1, floods.join(' '));
  const left = drain(q);
  // A flood keeps its newest of those it had waiting (a's first 512): its oldest went first.
  assert.ok(left.includes('a511') && !left.includes('a0'), left.slice(0, 5).join(' '));
  assert.deepEqual(
    left.slice(-20),
    Array.from({ length: 20 }, (_, i) => `quiet${i}`),
  );
});

test('one VM alone may take every place; a VM holding as many as any other is dropped itself', () => {
  const q = new JournalQueue<string>();
  for (let i = 0; i < 8; i++) offer(q, 8, `a${i}`, 'a');
  assert.equal(q.heldBy('a'), 8, "a burst of one VM's takes every place");
  assert.equal(offer(q, 8, 'a8', 'a'), 'a8');
  for (let i = 0; i < 4; i++) assert.equal(offer(q, 8, `b${i}`, 'b'), `a${i}`);
  assert.equal(offer(q, 8, 'b4', 'b'), 'b4', 'b holds as many as a');
  assert.deepEqual(drain(q), ['a4', 'a5', 'a6', 'a7', 'b0', 'b1', 'b2', 'b3']);
  assert.equal(q.heldBy('a') + q.heldBy('b'), 0);
});

test("entries without a VM are neither dropped for another's nor take another's place", () => {
  const q = new JournalQueue<string>();
  for (let i = 0; i < 4; i++) offer(q, 4, `x${i}`);
  assert.equal(offer(q, 4, 'a0', 'a'), 'a0');
  assert.equal(offer(q, 4, 'x4'), 'x4');
  assert.deepEqual(drain(q), ['x0', 'x1', 'x2', 'x3']);
});

test('against a plain list: the same order, and the oldest of a VM holding the most goes', () => {
  // Deterministic pseudo-random steps (a linear congruential generator).
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
  const q = new JournalQueue<string>();
  const model: { item: string; vm: string | undefined }[] = [];
  const bound = 40;
  let replaced = 0;
  for (let step = 0; step < 20_000; step++) {
    if (next(3) === 0) {
      assert.equal(q.shift(), model.shift()?.item);
      continue;
    }
    const vm = next(8) === 0 ? undefined : `vm${next(next(2) === 0 ? 3 : 30)}`;
    const item = `e${step}`;
    const counts = new Map<string, number>();
    for (const m of model) if (m.vm !== undefined) counts.set(m.vm, (counts.get(m.vm) ?? 0) + 1);
    const most = Math.max(0, ...counts.values());
    const dropped = offer(q, bound, item, vm);
    if (dropped === undefined) {
      model.push({ item, vm });
    } else if (dropped !== item) {
      const at = model.findIndex((m) => m.item === dropped);
      const vmOf = model[at]?.vm as string;
      assert.equal(counts.get(vmOf), most, `${dropped} is of a VM holding the most`);
      assert.ok((counts.get(vm as string) ?? 0) < most);
      assert.equal(
        at,
        model.findIndex((m) => m.vm === vmOf),
        `${dropped} is its VM's oldest`,
      );
      model.splice(at, 1);
      model.push({ item, vm });
      replaced++;
    } else {
      assert.ok(model.length >= bound);
      assert.ok(vm === undefined || (counts.get(vm) ?? 0) >= most);
    }
    assert.equal(q.length, model.length);
    if (vm !== undefined) assert.equal(q.heldBy(vm), model.filter((m) => m.vm === vm).length);
  }
  assert.ok(replaced > 1000, `${replaced} entries took another's place`);
  assert.deepEqual(
    drain(q),
    model.map((m) => m.item),
  );
});
