/**
 * `seawall why`'s outcome of a kill (store/why.ts, StoreQueries.actionFor) when a plugin reused a
 * seq, as it may once the seq's event was answered (docs/protocol.md): each event shows its own
 * action, and one whose kill was folded into a kill under way shows that one as folded, not the
 * action of another event of its seq.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EventStore, WhyBuilder, type WhyResult } from '../../store/index.js';
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
