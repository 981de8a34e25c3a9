/** Matchers, first-match order and the label index. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import { inPackedRanges, packGpaRanges } from '../../policies/gpa-ranges.js';
import { compilePolicy, PolicyState, parsePolicy, policyEventFromJson } from '../../policies/index.js';
import { MERGED, policyFrom, seaEvent, T0 } from './fixtures.js';

const rule = (name: string, match: string) =>
  `  - name: ${name}\n    match: ${match}\n    action: { type: none }\n`;
const policyWith = (...rules: string[]) =>
  policyFrom(`version: 1\nname: t\nrules:\n${rules.join('')}default: { action: { type: kill } }\n`);
const ruleFor = (match: string, ev: ReturnType<typeof seaEvent>) =>
  policyWith(rule('r', match)).decide(ev, MERGED).rule;

test('every matcher matches what it should and nothing else', () => {
  const ev = seaEvent({ vm: { id: 'vm1', labels: { tier: 'gold', tenant: 'acme' } }, vcpu: 3 });
  const cases: [string, boolean][] = [
    ['{ kind: sea }', true],
    ['{ kind: [nisv, mmio] }', false],
    ['{ abort: data }', true],
    ['{ abort: instruction }', false],
    ['{ fsc: sea }', true],
    ['{ fsc: [parity, parity-walk] }', false],
    ['{ severity: uer }', true],
    ['{ severity: [uc, ueo] }', false],
    ['{ gpaKnown: true }', true],
    ['{ gpaKnown: false }', false],
    ['{ gpa: [{ from: 0x8000000, to: 0x8000fff }] }', true],
    ['{ gpa: [{ from: 0x0, to: 0x7ffffff }, { from: 0x8001000, to: 0xffffffff }] }', false],
    ['{ vcpu: [1, 3] }', true],
    ['{ vcpu: 0 }', false],
    ['{ labels: { tier: gold } }', true],
    ['{ labels: { tier: silver } }', false],
    ['{ labels: { tenant: { in: [acme, globex] } } }', true],
    ['{ labels: { tenant: { in: [globex] } } }', false],
    ['{ labels: { canary: { exists: false }, tier: { exists: true } } }', true],
    ['{ labels: { canary: { exists: true } } }', false],
    ['{ labels: { constructor: { exists: true } } }', false],
    ['{ repeatPage: false }', true],
    ['{ repeatPage: true }', false],
    ['{ rate: { threshold: 1 / 1s } }', true],
    ['{ rate: { threshold: 2 / 1h, scope: host } }', false],
    ['{}', true],
  ];
  for (const [match, want] of cases) assert.equal(ruleFor(match, ev), want ? 'r' : 'default', match);
});

test('a GPA range matches an event whose page it overlaps, even not at the page start', () => {
  const at = (gpa: string) => seaEvent({ gpa });
  // The event's GPA becomes its page, 0x80001000: a range inside the page still holds it.
  assert.equal(ruleFor('{ gpa: [{ from: 0x80001234, to: 0x80001234 }] }', at('0x80001234')), 'r');
  assert.equal(ruleFor('{ gpa: [{ from: 0x80001fff, to: 0x80002000 }] }', at('0x80001000')), 'r');
  assert.equal(ruleFor('{ gpa: [{ from: 0x80001fff, to: 0x80002000 }] }', at('0x80002fff')), 'r');
  assert.equal(ruleFor('{ gpa: [{ from: 0x80001234, to: 0x80001234 }] }', at('0x80002000')), 'default');
  assert.equal(ruleFor('{ gpa: [{ from: 0x80001234, to: 0x80001234 }] }', at('0x80000fff')), 'default');
  assert.equal(
    ruleFor('{ gpa: [{ from: 0xfffffffffffff001, to: 0xffffffffffffffff }] }', at('0xfffffffffffff800')),
    'r',
  );
});

test('GPA matching by binary search agrees with a scan of the ranges for overlap with the page', () => {
  const page = (g: bigint) => g - (g & 0xfffn);
  const gpa = fc.bigInt({ min: 0n, max: 0xffffn });
  fc.assert(
    fc.property(fc.array(fc.tuple(gpa, gpa), { minLength: 1, maxLength: 12 }), gpa, (pairs, g) => {
      const ranges = pairs.map(([a, b]) => (a <= b ? { from: a, to: b } : { from: b, to: a }));
      const want = ranges.some((r) => r.from <= page(g) + 0xfffn && r.to >= page(g));
      assert.equal(inPackedRanges(packGpaRanges(ranges), page(g)), want);
    }),
  );
});

test('severity is unknown when SET is meaningless, and GPA unknown fails GPA matchers', () => {
  const parity = seaEvent({ esr: '0x92000418', gpa: null });
  assert.equal(parity.fsc, 'parity');
  assert.equal(ruleFor('{ severity: unknown }', parity), 'r');
  assert.equal(ruleFor('{ gpa: [{ from: 0, to: 0xffffffffffffffff }] }', parity), 'default');
  assert.equal(ruleFor('{ gpaKnown: false }', parity), 'r');
});

test('first match wins in file order, with and without the label index', () => {
  const p = policyWith(
    rule('catch-acme-walk', '{ fsc: sea-walk }'),
    rule('gold-1', '{ labels: { tier: gold } }'),
    rule('everyone-uer', '{ severity: uer }'),
    rule('gold-2', '{ labels: { tier: gold } }'),
    rule('silver', '{ labels: { tier: { in: [silver, bronze] } } }'),
  );
  assert.equal(p.indexKey, 'tier');
  const gold = { id: 'g', labels: { tier: 'gold' } };
  assert.equal(p.decide(seaEvent({ vm: gold }), MERGED).rule, 'gold-1');
  assert.equal(p.decide(seaEvent({ vm: gold, esr: '0x92000015' }), MERGED).rule, 'catch-acme-walk');
  assert.equal(
    p.decide(seaEvent({ vm: { id: 's', labels: { tier: 'silver' } } }), MERGED).rule,
    'everyone-uer',
  );
  assert.equal(
    p.decide(seaEvent({ vm: { id: 'b', labels: { tier: 'bronze' } }, esr: '0x92001010' }), MERGED).rule,
    'silver',
  );
  assert.equal(
    p.decide(seaEvent({ vm: { id: 'n', labels: {} }, esr: '0x92001010' }), MERGED).rule,
    'default',
  );
});

test('decide (label index) and explain (linear scan) agree on random policies and events', () => {
  const tiers = ['gold', 'silver', 'bronze', 'lead'];
  const matchArb = fc.oneof(
    fc.constantFrom(...tiers).map((t) => `{ labels: { tier: ${t} } }`),
    fc.subarray(tiers, { minLength: 1 }).map((ts) => `{ labels: { tier: { in: [${ts.join(', ')}] } } }`),
    fc.constantFrom('{ severity: uc }', '{ vcpu: [0, 1] }', '{ fsc: parity }', '{ labels: { zone: a } }'),
    fc.constantFrom(...tiers).map((t) => `{ labels: { tier: ${t} }, vcpu: 2 }`),
  );
  fc.assert(
    fc.property(
      fc.array(matchArb, { minLength: 1, maxLength: 12 }),
      fc.array(
        fc.record({
          tier: fc.option(fc.constantFrom(...tiers, 'other')),
          zone: fc.option(fc.constantFrom('a', 'b')),
          vcpu: fc.integer({ min: 0, max: 3 }),
          esr: fc.constantFrom('0x92000410', '0x92001010', '0x92000418'),
        }),
        { minLength: 1, maxLength: 10 },
      ),
      (matches, events) => {
        const p = policyWith(...matches.map((m, i) => rule(`r${i}`, m)));
        for (const e of events) {
          const labels: Record<string, string> = {};
          if (e.tier) labels.tier = e.tier;
          if (e.zone) labels.zone = e.zone;
          const ev = seaEvent({ vm: { id: 'v', labels }, vcpu: e.vcpu, esr: e.esr });
          assert.equal(p.decide(ev, MERGED).rule, p.explain(ev, MERGED).matched.rule);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('explain names, for each earlier rule, the first matcher that failed and the values compared', () => {
  const p = policyWith(rule('gold', '{ kind: sea, labels: { tier: gold } }'), rule('nisv', '{ kind: nisv }'));
  const ev = policyEventFromJson({
    kind: 'sea',
    vm: { id: 'x', labels: { tier: 'silver' } },
    vcpu: 0,
    esr: '0x92000410',
    timeMs: T0,
  });
  const x = p.explain(ev, MERGED);
  assert.equal(x.matched.rule, 'default');
  assert.deepEqual(
    x.notMatched.map((m) => [m.rule, m.matcher, m.expected, m.actual]),
    [
      ['gold', 'labels.tier', "'gold'", "'silver'"],
      ['nisv', 'kind', 'nisv', 'sea'],
    ],
  );
});

test('20,000 values of the index label and 3,000 rules without it: no bucket copies the unpinned rules', () => {
  const values = Array.from({ length: 20_000 }, (_, i) => `v${i}`).join(', ');
  const plain = Array.from(
    { length: 3000 },
    (_, i) => `  - { name: plain-${i}, match: { kind: mmio }, action: { type: none } }`,
  ).join('\n');
  const text = `version: 1
name: wide
rules:
  - { name: many, match: { labels: { tier: { in: [${values}] } } }, action: { type: kill } }
  - { name: gold, match: { labels: { tier: x } }, action: { type: kill } }
${plain}
default: { action: { type: inject, abort: data } }
`;
  const r = parsePolicy(text, 'wide.yaml');
  assert.ok(r.ok);
  if (!r.ok) return;
  const before = process.memoryUsage().heapUsed;
  const p = compilePolicy(r.policy, { state: new PolicyState() });
  // Each of 20,000 buckets holding its own copy of 3,001 rules took ~480 MB (and seconds).
  const grew = process.memoryUsage().heapUsed - before;
  assert.ok(grew < 100 * 2 ** 20, `compiling grew the heap by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  const tier = (v: string) => seaEvent({ vm: { id: 'a', labels: { tier: v } } });
  assert.equal(p.decide(tier('v19999'), MERGED).rule, 'many');
  assert.equal(p.decide(tier('x'), MERGED).rule, 'gold');
  assert.equal(p.decide(tier('none'), MERGED).rule, 'default');
});
