/** `seawall why` in words: a count the store bounded is shown as a lower bound, never as exact. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatWhy } from '../../cli/commands/why.js';
import type { WhyEntry, WhyResult } from '../../control/index.js';

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
  return { vm: 'vm-7', events: 10_000, eventsAtLeast: atLeast, entries: [entry(atLeast)], more: false };
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
