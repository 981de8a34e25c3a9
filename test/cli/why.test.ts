/** `seawall why` in words: a count the store bounded is shown as a lower bound, never as exact. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatWhy } from '../../cli/commands/why.js';
import type { WhyEntry, WhyOutcome, WhyResult } from '../../control/index.js';

const T = Date.UTC(2026, 11, 4, 9, 0, 0);

function entry(atLeast: boolean): WhyEntry {
  const ev = { id: 7, timeMs: T, vm: 'vm-7', kind: 'sea', severity: 'uer', gpa: '0x0000000000001000' };
  return {
    event: {
      ...ev,
      vcpu: 3,
      esr: null,
      rule: 'repeat-kill',
      policyVersion: 'v1',
      action: 'kill',
    } as unknown as WhyEntry['event'],
    decision: 'kill',
    conditions: [
      { matcher: 'repeatPage', expected: 'true', evidence: { count: 10, atLeast, events: [ev] } },
      { matcher: 'rate', expected: '3 / 10m per vm', evidence: { count: 1, atLeast, events: [ev] } },
    ],
    outcome: null,
  };
}

function why(atLeast: boolean): WhyResult {
  return {
    vm: 'vm-7',
    events: 10_000,
    eventsAtLeast: atLeast,
    replays: 0,
    superseded: 0,
    newestMs: T,
    entries: [entry(atLeast)],
    more: false,
  };
}

test('why says "at least" where the store counted only up to its bound', () => {
  const bounded = formatWhy(why(true));
  assert.match(bounded, /^VM vm-7: at least 10000 events; 1 decision beyond the default/);
  assert.match(bounded, /at least 10 earlier errors on this page \(the newest 1 shown\)/);
  assert.match(bounded, /at least 1 event in the window, this one included/);
  const exact = formatWhy(why(false));
  assert.match(exact, /^VM vm-7: 10000 events;/);
  assert.match(exact, / 10 earlier errors on this page/);
  assert.doesNotMatch(exact, /at least/);
  assert.match(bounded, /beyond the default among its newest 10000 events \(older ones were not searched/);
  assert.match(
    formatWhy({ ...why(true), entries: [] }),
    /^VM vm-7: at least 10000 events; the newest 10000, every one answered by the default rule — older ones were not searched/,
  );
  assert.match(formatWhy({ ...why(false), entries: [] }), /^VM vm-7: 10000 events, every one answered/);
});

const action = (o: Partial<WhyOutcome>): WhyOutcome => ({
  id: 1,
  timeMs: T,
  vm: 'vm-7',
  action: 'migrate',
  rule: 'gold-migrate',
  outcome: 'refused',
  detail: null,
  updatedMs: T + 2000,
  own: true,
  onFailureKill: null,
  ...o,
});

function decided(act: 'kill' | 'migrate', outcome: WhyOutcome): WhyEntry {
  const e = entry(false);
  return { ...e, event: { ...e.event, action: act }, decision: act, conditions: [], outcome };
}

test("a refused migration's entry shows the kill its onFailure started", () => {
  const kill = {
    ...action({ id: 2, action: 'kill', outcome: 'exited', timeMs: T + 2000, updatedMs: T + 3000 }),
  };
  const text = formatWhy({ ...why(false), entries: [decided('migrate', action({ onFailureKill: kill }))] });
  assert.match(text, /outcome {2}migrate refused by the orchestrator .*, at 2026-12-04 09:00:02Z\n/);
  assert.match(
    text,
    /\n {11}then: kill \(the rule's onFailure, the migration refused\) requested at 2026-12-04 09:00:02Z: the VMM exited within the grace \(enforcement not needed\), at 2026-12-04 09:00:03Z$/,
  );
  assert.doesNotMatch(formatWhy({ ...why(false), entries: [decided('migrate', action({}))] }), /then:/);
});

test('a decision folded into a kill does not repeat how many were folded into it; counts are in words', () => {
  const detail = 'pid 7; 1 later kill decision folded in';
  const own = action({ action: 'kill', outcome: 'sigkilled', detail });
  const text = formatWhy({
    ...why(false),
    entries: [decided('kill', own), decided('kill', { ...own, own: false })],
  });
  assert.equal(text.match(/1 later kill decision folded in/g)?.length, 1, text);
  assert.match(
    text,
    /kill enforced: SIGKILL at the end of the grace \(pid 7\), folded into the kill requested/,
  );
  assert.match(text, /^VM vm-7: 10000 events; 2 decisions beyond the default/);
});

test("why tells replays and verdicts the plugin's fallback superseded from the default rule's answers", () => {
  const quiet = { ...why(false), events: 180, entries: [] };
  assert.equal(
    formatWhy({ ...quiet, replays: 64, superseded: 5 }),
    "VM vm-7: 180 events, 116 decided by the default rule (5 of them too late: the plugin's fallback answered first), " +
      "64 replays answered by the plugin's fallback (no rule decided them) — nothing beyond the default was decided",
  );
  assert.match(
    formatWhy({ ...quiet, replays: 180 }),
    /180 events, every one a replay answered by the plugin's fallback/,
  );
  assert.match(
    formatWhy({ ...quiet, superseded: 1 }),
    /180 events, every one decided by the default rule \(1 verdict too late: the plugin's fallback answered first\)/,
  );
  assert.match(
    formatWhy({ ...why(false), replays: 64, superseded: 2 }),
    /^VM vm-7: 10000 events \(64 replays answered by the plugin's fallback, 2 verdicts too late: .*\); 1 decision beyond/,
  );
});

test('why tells a VM with no events in the period from one the store holds none of', () => {
  const none = { ...why(false), events: 0, entries: [] };
  assert.equal(
    formatWhy(none, T + 60_000),
    'VM vm-7: no stored events since 2026-12-04 09:01:00Z (its newest is of 2026-12-04 09:00:00Z)',
  );
  assert.equal(
    formatWhy({ ...none, newestMs: null }, T),
    'VM vm-7: no stored events (the store holds none of this VM)',
  );
  assert.match(
    formatWhy(why(false), T - 60_000),
    /^VM vm-7: 10000 events since 2026-12-04 08:59:00Z; 1 decision/,
  );
});
