/**
 * `seawall why`'s outcome of a kill (store/why.ts, StoreQueries.actionFor) when a plugin reused a
 * seq, as it may once the seq's event was answered (docs/protocol.md): each event shows its own
 * action, and one whose kill was folded into a kill under way shows that one as folded, not the
 * action of another event of its seq.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EventStore, WhyBuilder, type WhyResult } from '../../store/index.js';
import { WINDOW_SCAN_ROWS } from '../../store/window-queries.js';
import { record, scratchStore, session } from './records.js';

const T = Date.UTC(2026, 11, 5, 14, 0, 0);

function why(store: EventStore): WhyResult {
  return store.db.transaction(() => new WhyBuilder(store.queries).build({ vm: 'vm-1' }))();
}

/** A kill event of session 7, seq 1, at `t`; with `outcome`, its own kill, started `startMs` later. */
function kill(store: EventStore, t: number, outcome?: string, startMs = 0): void {
  store.append([record({ session: session('vm-1', 7n), seq: 1, timeMs: t, action: 'kill' })]);
  if (outcome === undefined) return;
  const a = store.recordAction({
    vm: 'vm-1',
    action: 'kill',
    rule: 'kill-uc',
    outcome: 'requested',
    timeMs: t + startMs,
    event: { sessionId: 7n, seq: 1 },
  });
  store.actionEnded(a, outcome);
}

test('events of one seq each show their own kill, or the one theirs was folded into', (t) => {
  const store = scratchStore(t);
  kill(store, T, 'failed');
  // Decided while the first kill ran: folded into it, no action of its own.
  kill(store, T + 100);
  kill(store, T + 5000, 'sigkilled', 2);
  // The seq's next event a millisecond after its predecessor's kill started, folded into it.
  kill(store, T + 9000, 'vmm-exited');
  kill(store, T + 9001);
  const r = why(store);
  assert.deepEqual(
    r.entries.map((e) => [e.event.timeMs - T, e.outcome?.outcome, e.outcome?.own]),
    [
      [0, 'failed', true],
      [100, 'failed', false],
      [5000, 'sigkilled', true],
      [9000, 'vmm-exited', true],
      [9001, 'vmm-exited', false],
    ],
  );
});

test("why searches a VM's newest events of the period for decisions, not its whole history", (t) => {
  const store = scratchStore(t);
  const s = session('vm-1', 7n);
  // A kill, then more default-rule events than a window reads, then a kill among the newest.
  const rows = [record({ session: s, seq: 1, timeMs: T, action: 'kill' })];
  for (let seq = 2; seq <= WINDOW_SCAN_ROWS + 10; seq++)
    rows.push(record({ session: s, seq, timeMs: T + seq, rule: 'default', action: 'inject' }));
  rows.push(
    record({ session: s, seq: WINDOW_SCAN_ROWS + 11, timeMs: T + WINDOW_SCAN_ROWS + 11, action: 'kill' }),
  );
  store.append(rows);
  const r = why(store);
  assert.deepEqual(
    r.entries.map((e) => e.event.seq),
    [WINDOW_SCAN_ROWS + 11],
    'the kill among the newest events; the one before them was not searched',
  );
  assert.deepEqual([r.events, r.eventsAtLeast, r.more], [WINDOW_SCAN_ROWS, true, false]);
  const since = store.db.transaction(() => new WhyBuilder(store.queries).build({ vm: 'vm-1', sinceMs: T }))();
  assert.equal(since.entries.length, 1);
  const plan = (
    store.db.prepare(`EXPLAIN QUERY PLAN ${store.queries.actionEventsStatement().source}`).all({
      vm: 'vm-1',
      since: 0,
      limit: 21,
      scan: WINDOW_SCAN_ROWS,
    }) as { detail: string }[]
  ).map((p) => p.detail);
  assert.ok(
    plan.includes('SEARCH event_rows USING INDEX events_vm_time (vm=? AND time_ms>?)'),
    plan.join('; '),
  );
});
