/**
 * `seawall why`'s outcome of a kill (store/why.ts, StoreQueries.actionFor) when a plugin reused a
 * seq, as it may once the seq's event was answered (docs/protocol.md): each event shows its own
 * action, and one whose kill was folded into a kill under way shows that one as folded, not the
 * action of another event of its seq.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
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

/** A store whose clock (the time an action's end is recorded) is set by the test. */
function clockedStore(t: TestContext): { store: EventStore; clock: { now: number } } {
  const clock = { now: T };
  return { store: scratchStore(t, { bootId: 'boot-1', now: () => clock.now }), clock };
}

/** A migrate event of session 8, seq 1, at `t`, and its migration, started then. */
function migrate(store: EventStore, t: number) {
  const r = record({ session: session('vm-1', 8n), seq: 1, timeMs: t });
  const decision = {
    action: 'migrate',
    hook: 'orchestrator',
    scope: 'vm',
    meanwhile: null,
    onFailure: { action: 'kill', graceMs: 30_000 },
    rule: 'gold-migrate',
    policyVersion: 'v1',
  } as const;
  store.append([{ ...r, decision }]);
  const event = { sessionId: 8n, seq: 1 };
  const m = store.recordAction({
    vm: 'vm-1',
    action: 'migrate',
    rule: 'gold-migrate',
    outcome: 'requested',
    timeMs: t,
    event,
  });
  return { m, event };
}

test("a migration that was not accepted shows the kill its rule's onFailure started then", (t) => {
  const { store, clock } = clockedStore(t);
  const { m, event } = migrate(store, T);
  // As actions/migration-manager.ts does: the kill is asked for before the migration's end is recorded.
  const k = store.recordAction({
    vm: 'vm-1',
    action: 'kill',
    rule: 'gold-migrate',
    outcome: 'requested',
    detail: 'migration_refused; grace 30000 ms; pid 7',
    timeMs: T + 50,
    event,
  });
  clock.now = T + 50;
  store.actionEnded(m, 'refused', 'exit 3');
  store.actionEnded(k, 'exited');
  // The VM's newest decision was to migrate; the last action taken on it, the kill.
  assert.deepEqual(
    store.queries.vms().map((v) => [v.vm, v.lastAction]),
    [['vm-1', 'kill']],
  );
  // A later kill of the VM, decided by a rule of its own: not the migration's.
  kill(store, T + 60_000, 'sigkilled');
  const r = why(store);
  const [entry] = r.entries;
  assert.equal(entry?.outcome?.outcome, 'refused');
  assert.deepEqual(
    [entry?.outcome?.onFailureKill?.action, entry?.outcome?.onFailureKill?.outcome],
    ['kill', 'exited'],
  );
  assert.equal(r.entries[1]?.outcome?.onFailureKill, null, 'a kill is followed by no onFailure');
  // An event decided after the kill: its decision is the last action.
  store.append([record({ session: session('vm-1', 8n), seq: 2, timeMs: T + 70_000 })]);
  assert.equal(store.queries.vms()[0]?.lastAction, 'inject');
});

for (const ended of ['accepted', 'refused'])
  test(`a migration ${ended} and followed by no kill of its onFailure shows none`, (t) => {
    const { store, clock } = clockedStore(t);
    const { m, event } = migrate(store, T);
    clock.now = T + 50;
    store.actionEnded(m, ended);
    // The VM's kill a minute later, for an event of its own on the migration's session and seq.
    store.append([
      record({
        session: session('vm-1', 8n),
        seq: 1,
        timeMs: T + 60_000,
        action: 'kill',
        rule: 'gold-migrate',
      }),
    ]);
    const k = store.recordAction({
      vm: 'vm-1',
      action: 'kill',
      rule: 'gold-migrate',
      outcome: 'requested',
      timeMs: T + 60_000,
      event,
    });
    store.actionEnded(k, 'exited');
    const r = why(store);
    assert.deepEqual(
      r.entries.map((e) => [e.event.action, e.outcome?.outcome, e.outcome?.onFailureKill]),
      [
        ['migrate', ended, null],
        ['kill', 'exited', null],
      ],
    );
  });

test("why counts the replays and the verdicts the plugin's fallback superseded, and knows a VM it holds nothing of", (t) => {
  const store = scratchStore(t);
  const s = session('vm-1', 9n);
  store.append([
    record({ session: s, seq: 1, timeMs: T, rule: 'default' }),
    record({ session: s, seq: 2, timeMs: T + 1, rule: 'default' }),
    record({ session: s, seq: 3, timeMs: T + 2, replay: true }),
    record({ session: s, seq: 4, timeMs: T + 3, replay: true }),
  ]);
  // The verdict of seq 2 came after the plugin's fallback had answered (1.1 APPLIED, source FALLBACK).
  store.markApplied(9n, 2, 0, 3);
  const r = why(store);
  assert.deepEqual([r.events, r.replays, r.superseded, r.newestMs, r.entries.length], [4, 2, 1, T + 3, 0]);
  const later = store.db.transaction(() =>
    new WhyBuilder(store.queries).build({ vm: 'vm-1', sinceMs: T + 10 }),
  )();
  assert.deepEqual([later.events, later.replays, later.newestMs], [0, 0, T + 3]);
  const unknown = store.db.transaction(() => new WhyBuilder(store.queries).build({ vm: 'vm-none' }))();
  assert.deepEqual([unknown.events, unknown.newestMs], [0, null]);
});

test("why's counts and its search for an onFailure kill are ranges of an index", (t) => {
  const store = scratchStore(t);
  const plan = (s: { source: string }, params: unknown) =>
    (store.db.prepare(`EXPLAIN QUERY PLAN ${s.source}`).all(params as never) as { detail: string }[]).map(
      (p) => p.detail,
    );
  const { fallbacks, newest, onFailureKill } = store.queries.why.statements();
  assert.ok(
    plan(fallbacks, { vm: 'vm-1', since: 0, scan: WINDOW_SCAN_ROWS }).includes(
      'SEARCH event_rows USING INDEX events_vm_time (vm=? AND time_ms>?)',
    ),
  );
  assert.deepEqual(plan(newest, ['vm-1']), ['SEARCH event_rows USING COVERING INDEX events_vm_time (vm=?)']);
  assert.deepEqual(plan(onFailureKill, [1]), [
    'SEARCH m USING INTEGER PRIMARY KEY (rowid=?)',
    'SEARCH k USING INDEX actions_vm_time (vm=? AND time_ms>? AND time_ms<?)',
    // The kills of the VM during the migration, in the order they were recorded.
    'USE TEMP B-TREE FOR ORDER BY',
  ]);
});
