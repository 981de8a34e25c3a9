/** Rate windows, repeat pages and the state's bounds, all on synthetic time. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePolicy, PolicyState, parsePolicy } from '../../policies/index.js';
import { RECENCY_CASES } from '../helpers/recency.js';
import { MERGED, MIN, policyFrom, seaEvent, T0 } from './fixtures.js';

const rated = (threshold: string, scope: string) =>
  `version: 1
name: rate
rules:
  - name: hot
    match: { rate: { threshold: "${threshold}", scope: ${scope} } }
    action: { type: kill }
  - name: again
    match: { repeatPage: true }
    action: { type: none }
default: { action: { type: inject, abort: data } }
`;

const at = (min: number, over: Record<string, unknown> = {}) => seaEvent({ timeMs: T0 + min * MIN, ...over });

test('3 / 10m fires on the third event within ten minutes, not for three spread over eleven', () => {
  const p = policyFrom(rated('3 / 10m', 'vm'));
  const pages = ['0x1000', '0x2000', '0x3000'];
  assert.deepEqual(
    [0, 4, 9].map((m, i) => p.decide(at(m, { gpa: pages[i] }), MERGED).rule),
    ['default', 'default', 'hot'],
  );
  const q = policyFrom(rated('3 / 10m', 'vm'));
  assert.deepEqual(
    [0, 5.5, 11].map((m, i) => q.decide(at(m, { gpa: pages[i] }), MERGED).rule),
    ['default', 'default', 'default'],
  );
});

test('scope vm counts per VM, host counts every VM, page counts per (VM, page)', () => {
  const vm = policyFrom(rated('2 / 1h', 'vm'));
  assert.equal(vm.decide(at(0, { vm: { id: 'a' }, gpa: '0x1000' }), MERGED).rule, 'default');
  assert.equal(vm.decide(at(1, { vm: { id: 'b' }, gpa: '0x2000' }), MERGED).rule, 'default');
  assert.equal(vm.decide(at(2, { vm: { id: 'a' }, gpa: '0x3000' }), MERGED).rule, 'hot');

  const host = policyFrom(rated('2 / 1h', 'host'));
  assert.equal(host.decide(at(0, { vm: { id: 'a' }, gpa: '0x1000' }), MERGED).rule, 'default');
  assert.equal(host.decide(at(1, { vm: { id: 'b' }, gpa: '0x2000' }), MERGED).rule, 'hot');

  const page = policyFrom(rated('2 / 1h', 'page'));
  assert.equal(page.decide(at(0, { vm: { id: 'a' }, gpa: '0x1000' }), MERGED).rule, 'default');
  assert.equal(page.decide(at(1, { vm: { id: 'a' }, gpa: '0x2000' }), MERGED).rule, 'default');
  assert.equal(page.decide(at(2, { vm: { id: 'b' }, gpa: '0x1000' }), MERGED).rule, 'default');
  assert.equal(page.decide(at(3, { vm: { id: 'a' }, gpa: '0x1fff' }), MERGED).rule, 'hot');
  assert.equal(page.decide(at(4, { vm: { id: 'a' }, gpa: null }), MERGED).rule, 'default');
});

test('repeatPage: the same page of the same VM is a repeat; another VM or page is not', () => {
  const p = policyFrom(rated('100 / 1h', 'vm'));
  assert.equal(p.decide(at(0, { gpa: '0x5000' }), MERGED).rule, 'default');
  assert.equal(p.decide(at(1, { gpa: '0x6000' }), MERGED).rule, 'default');
  assert.equal(p.decide(at(2, { vm: { id: 'other' }, gpa: '0x5000' }), MERGED).rule, 'default');
  assert.equal(p.decide(at(3, { gpa: '0x5abc' }), MERGED).rule, 'again');
});

test('explain reads the state but records nothing', () => {
  const p = policyFrom(rated('2 / 1h', 'vm'));
  p.decide(at(0, { gpa: '0x1000' }), MERGED);
  for (let i = 0; i < 3; i++) assert.equal(p.explain(at(1, { gpa: '0x2000' }), MERGED).matched.rule, 'hot');
  assert.equal(p.state.stats().pages, 1);
});

test('a reload keeps windows: a new policy compiled against the same state sees earlier events', () => {
  const state = new PolicyState();
  const first = policyFrom(rated('3 / 10m', 'vm'), state);
  first.decide(at(0, { gpa: '0x1000' }), MERGED);
  first.decide(at(1, { gpa: '0x2000' }), MERGED);
  const reloaded = policyFrom(rated('3 / 10m', 'vm').replace('name: rate', 'name: rate-v2'), state);
  assert.notEqual(reloaded.version, first.version);
  assert.equal(reloaded.decide(at(2, { gpa: '0x3000' }), MERGED).rule, 'hot');
});

test('observe rebuilds the state from stored events without deciding', () => {
  const state = new PolicyState();
  state.observe(at(0, { gpa: '0x1000' }));
  state.observe(at(1, { gpa: '0x2000' }));
  const p = policyFrom(rated('3 / 10m', 'vm'), state);
  assert.equal(p.decide(at(2, { gpa: '0x2000' }), MERGED).rule, 'hot');
});

test('rings hold the largest threshold: a 40 / 1h rule fires on the 40th event', () => {
  const p = policyFrom(rated('40 / 1h', 'vm'));
  const rules = Array.from(
    { length: 40 },
    (_, i) => p.decide(at(i, { gpa: `0x${(i + 1).toString(16)}000` }), MERGED).rule,
  );
  assert.equal(rules.lastIndexOf('default'), 38);
  assert.equal(rules[39], 'hot');
  assert.ok(p.state.ringCapacity >= 40);
});

test('past the key bound the least recently seen VM is evicted and counted; its windows restart', () => {
  const r = parsePolicy(rated('2 / 1h', 'vm').replace('rules:', 'rateStateBound: 2\nrules:'), 'b.yaml');
  assert.ok(r.ok);
  if (!r.ok) return;
  const p = compilePolicy(r.policy, { state: new PolicyState() });
  p.decide(at(0, { vm: { id: 'a' }, gpa: null }), MERGED);
  p.decide(at(1, { vm: { id: 'b' }, gpa: null }), MERGED);
  p.decide(at(2, { vm: { id: 'c' }, gpa: null }), MERGED); // evicts a
  const s = p.state.stats();
  assert.equal(s.vms, 2);
  assert.equal(s.evictions.vm, 1);
  assert.equal(p.decide(at(3, { vm: { id: 'a' }, gpa: null }), MERGED).rule, 'default');
  assert.equal(p.decide(at(4, { vm: { id: 'c' }, gpa: null }), MERGED).rule, 'hot');
  assert.equal(new PolicyState().maxKeys, 65_536);
});

test('a VM seen again becomes the most recently seen, once or in a storm: the other one is evicted', () => {
  for (const { seen, goes, stays } of RECENCY_CASES) {
    const state = new PolicyState({ maxKeys: 2 });
    for (const [i, id] of [...seen, 'c'].entries()) state.observeAt(id, T0 + i, null);
    const e = (id: string) => at(9, { vm: { id }, gpa: null });
    assert.equal(state.countWithin('vm', e(goes), 3_600_000), 0, `${seen.join(' ')} c: ${goes} evicted`);
    assert.ok(state.countWithin('vm', e(stays), 3_600_000) > 0, `${seen.join(' ')} c: ${stays} kept`);
    assert.equal(state.stats().evictions.vm, 1);
  }
});

test('a time out of order cannot push a more recent one out of a window: 1970-dated events evict nothing', () => {
  const p = policyFrom(rated('3 / 1h', 'host'));
  assert.equal(p.decide(at(0, { vm: { id: 'victim' }, gpa: '0x1000' }), MERGED).rule, 'default');
  assert.equal(p.decide(at(1, { vm: { id: 'victim' }, gpa: '0x2000' }), MERGED).rule, 'default');
  // Another VM's replays, dated at the epoch, arrive after the victim's events.
  for (let ms = 1; ms <= 3; ms++) p.state.observe(seaEvent({ vm: { id: 'other' }, timeMs: ms, gpa: null }));
  assert.equal(p.decide(at(2, { vm: { id: 'victim' }, gpa: '0x3000' }), MERGED).rule, 'hot');
  // Each scope keeps its latest times, whatever the order they came in.
  const e = at(2, { vm: { id: 'other' }, gpa: null });
  assert.equal(p.state.countWithin('host', e, 3_600_000), 3);
  assert.equal(p.state.countWithin('vm', e, 3_600_000), 0);
});

test('every ring holds the latest times by time, whatever the arrival order (against a model)', () => {
  // A deterministic generator: the same sequence on every run.
  let seed = 0x5eed;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed % n;
  };
  for (const threshold of [1, 4, 7, 50]) {
    const state = new PolicyState();
    state.reserve(threshold);
    const capacity = state.ringCapacity;
    const seen: number[] = [];
    for (let i = 0; i < 400; i++) {
      // Mostly in order, some far back, some just behind, some equal to a kept time.
      const r = rand(10);
      const t =
        r < 5
          ? T0 + i * 1000
          : r < 7
            ? T0 - rand(1_000_000)
            : r < 9
              ? T0 + (i - rand(20)) * 1000
              : (seen[rand(seen.length)] ?? T0);
      state.observeAt('vm', t, null);
      seen.push(t);
      const kept = [...seen].sort((a, b) => b - a).slice(0, capacity);
      const now = T0 + rand(i + 1) * 1000;
      for (const w of [1, 5_000, 60_000, 10_000_000]) {
        const want = kept.filter((k) => k > now - w && k <= now).length;
        assert.equal(
          state.countWithin('host', seaEvent({ vm: { id: 'vm' }, timeMs: now, gpa: null }), w),
          want,
          `capacity ${capacity}, push ${i}, window ${w}`,
        );
      }
    }
  }
});

/** A state of `maxKeys` with VM `live` pinned; `page` records page n of a VM, `seen` asks for it. */
function liveState(maxKeys: number) {
  const state = new PolicyState({ maxKeys });
  state.pin('live');
  const page = (vm: string, n: number) => state.observeAt(vm, T0, BigInt(n) << 12n);
  const seen = (vm: string, n: number) =>
    state.seenPage(seaEvent({ vm: { id: vm }, gpa: BigInt(n) << 12n, timeMs: T0 }));
  return { state, page, seen };
}

test('pages are bounded over all VMs too: VMs without a live session go first, then the adder’s own', () => {
  const { state, page, seen } = liveState(8);
  for (let n = 0; n < 4; n++) page('gone', n);
  for (let n = 0; n < 4; n++) page('live', n);
  assert.equal(state.stats().pages, 8);
  // A ninth page: the VM without a session makes room, whole.
  page('flood', 0);
  assert.deepEqual([state.stats().pages, state.stats().vms, state.stats().evictions.vm], [5, 2, 1]);
  for (let n = 1; n < 100; n++) page('flood', n);
  // Only pinned VMs left besides it: the flooding VM pays with its own oldest pages.
  assert.equal(state.stats().pages, 8);
  assert.ok(
    [0, 1, 2, 3].every((n) => seen('live', n)),
    'the live VM kept every page',
  );
  assert.ok(seen('flood', 99) && !seen('flood', 0));
});

test('a reload to a policy without rateStateBound has the default bound, not the one before', () => {
  const state = new PolicyState();
  const bounded = parsePolicy(rated('2 / 1h', 'vm').replace('rules:', 'rateStateBound: 2\nrules:'), 'a.yaml');
  const plain = parsePolicy(rated('2 / 1h', 'vm'), 'b.yaml');
  assert.ok(bounded.ok && plain.ok);
  if (!bounded.ok || !plain.ok) return;
  compilePolicy(bounded.policy, { state });
  assert.equal(state.maxKeys, 2);
  compilePolicy(plain.policy, { state });
  assert.equal(state.maxKeys, 65_536);
});

test('a page repeated while it is the newest keeps its window and its place: the least recently seen goes', () => {
  const state = new PolicyState({ maxPagesPerVm: 3 });
  const page = (n: number, min = 0) => state.observeAt('vm', T0 + min * MIN, BigInt(n) << 12n);
  const event = (n: number) => seaEvent({ vm: { id: 'vm' }, gpa: BigInt(n) << 12n, timeMs: T0 + 10 * MIN });
  page(1);
  page(2);
  page(3);
  page(3, 1);
  page(3, 2);
  page(1, 3);
  page(1, 4);
  assert.equal(state.countWithin('page', event(3), 60 * MIN), 3, 'every repeat of page 3 counted');
  assert.equal(state.countWithin('page', event(1), 60 * MIN), 3, 'every sighting of page 1 counted');
  // Page 2 is now the least recently seen: a fourth page evicts it, not the repeated ones.
  page(4, 5);
  assert.deepEqual(
    [1, 2, 3, 4].map((n) => state.seenPage(event(n))),
    [true, false, true, true],
  );
  assert.equal(state.stats().evictions.page, 1);
  // An evicted page seen again starts a new window.
  const one = new PolicyState({ maxPagesPerVm: 1 });
  one.observeAt('vm', T0, 1n << 12n);
  one.observeAt('vm', T0, 2n << 12n);
  one.observeAt('vm', T0, 1n << 12n);
  assert.equal(
    one.countWithin('page', seaEvent({ vm: { id: 'vm' }, gpa: 1n << 12n, timeMs: T0 + MIN }), MIN * 60),
    1,
  );
});

test('with every other VM live, a VM without a session keeps its page: live VMs keep their repeats', () => {
  const state = new PolicyState();
  const live = ['a', 'b', 'c', 'd'];
  for (const id of live) state.pin(id);
  const p = policyFrom(rated('1000 / 1h', 'vm').replace('rules:', 'rateStateBound: 4\nrules:'), state);
  const decide = (vm: string, page: number | null) =>
    p.decide(at(0, { vm: { id: vm }, gpa: page === null ? null : `0x${(page << 12).toString(16)}` }), MERGED)
      .rule;
  // As many live VMs as the bound; only one of them with pages.
  for (const id of live) decide(id, null);
  decide('a', 1);
  decide('a', 2);
  // Sessionless VMs, one event each: each is kept with its page until the next one takes its place.
  for (let n = 0; n < 20; n++) assert.equal(decide(`gone${n}`, 7), 'default');
  assert.equal(decide('gone19', 7), 'again', 'the VM just seen kept its page');
  assert.deepEqual(
    [state.stats().vms, state.stats().pages, state.stats().evictions.page],
    [5, 3, 0],
    'one sessionless VM over the bound, and every page counted is a page kept',
  );
  // A third page of the live VM is within the bound of 4 pairs: it costs none of its others.
  decide('a', 3);
  assert.deepEqual(
    [1, 2, 3].map((n) => decide('a', n)),
    ['again', 'again', 'again'],
  );
  assert.equal(state.stats().evictions.page, 0);
});

test('lowering the bound evicts pages at once too: at most the bound of (VM, page) pairs are left', () => {
  const { state, page, seen: seenBy } = liveState(16);
  for (let n = 0; n < 8; n++) page('live', n);
  for (let n = 0; n < 6; n++) page('gone', n);
  assert.equal(state.stats().pages, 14);
  state.setMaxKeys(4);
  const s = state.stats();
  assert.deepEqual([s.vms, s.pages, s.evictions.vm], [1, 4, 1]);
  const seen = (n: number) => seenBy('live', n);
  // The live VM's least recently seen pages went; its newest stay.
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map(seen), [false, false, false, false, true, true, true, true]);
  page('live', 7);
  page('live', 8);
  assert.equal(state.stats().pages, 4);
  assert.ok(seen(7) && seen(8) && !seen(4));
});
