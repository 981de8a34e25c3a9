/** The event store on a real SQLite file: writes, idempotence, rollback, queries, rebuild. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { EventStore, isStoreError, type StoreOp } from '../../store/index.js';
import { COL } from '../../store/rows.js';
import type { StoreUpdate } from '../../store/updates.js';
import { nextEvent } from '../helpers/wait.js';
import { record, SEA_ESR, session, tempStorePath } from './records.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(onError?: (op: StoreOp, err: unknown) => void): EventStore {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  return new EventStore({ path, bootId: 'boot-1', onError });
}

const T0 = 1_700_000_000_000;

test('a fresh store is WAL with synchronous=NORMAL', () => {
  const store = open();
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(store.db.pragma('synchronous', { simple: true }), 1); // NORMAL
  assert.equal(store.openedVersion, 0);
  store.close();
});

test('append stores every field and upserts the poisoned page in the same transaction', () => {
  const store = open();
  const s = session('vm-a');
  const r = store.append([
    record({ session: s, seq: 1, timeMs: T0, gpa: 0x8000_1234n }),
    record({ session: s, seq: 2, timeMs: T0 + 10, gpa: 0x8000_1fffn }),
    record({ session: s, seq: 3, timeMs: T0 + 20, gpa: null, action: 'kill' }),
  ]);
  assert.deepEqual(r, { inserted: 3, duplicates: 0 });
  const events = store.queries.events({ vm: 'vm-a' });
  assert.equal(events.length, 3);
  const e = events[0]!;
  assert.equal(e.esr, '0x0000000092000410');
  assert.equal(e.ec, 0x24);
  assert.equal(e.fsc, 0x10);
  assert.equal(e.fscClass, 'sea');
  assert.equal(e.severity, 'uer');
  assert.equal(e.gpa, '0x0000000080001000');
  assert.equal(e.gva, '0xffff800000001000');
  assert.deepEqual(e.labels, { tenant: 't1' });
  assert.equal(e.action, 'inject');
  assert.equal(e.rule, 'inject-data');
  assert.equal(e.policyVersion, 'v1');
  assert.equal(e.verdictAction, 1);
  assert.equal(e.replay, false);
  assert.equal(e.seq, 1);
  assert.equal(e.bootId, 'boot-1');
  assert.ok(e.latencyNs !== null && e.latencyNs >= 0);
  assert.equal(events[2]!.action, 'kill');
  assert.equal(events[2]!.gpa, null);
  assert.deepEqual(store.queries.poisonedPages('vm-a'), [
    { vm: 'vm-a', gpa: '0x0000000080001000', firstSeenMs: T0, lastSeenMs: T0 + 10, count: 2 },
  ]);
  store.close();
});

test('appending the same rows again (their ids) adds no row and does not inflate page counts', () => {
  const store = open();
  const s = session('vm-a');
  const batch = [record({ session: s, seq: 1, timeMs: T0 }), record({ session: s, seq: 2, timeMs: T0 + 1 })];
  const rows = store.rowsOf(batch).map((r) => r.values);
  assert.deepEqual(
    rows.map((v) => v[COL.id]),
    [1, 2],
  );
  assert.deepEqual(store.appendRows(rows), { inserted: 2, duplicates: 0 });
  assert.deepEqual(store.appendRows(rows), { inserted: 0, duplicates: 2 });
  const [third] = store.rowsOf([record({ session: s, seq: 3, timeMs: T0 + 2 })]);
  assert.deepEqual(store.appendRows([rows[1]!, third!.values]), { inserted: 1, duplicates: 1 });
  assert.equal(store.queries.totals().events, 3);
  assert.equal(store.queries.poisonedPages()[0]!.count, 3);
  // The same session id and seq in another daemon run is another event, with ids past the file's.
  const other = new EventStore({ path: store.path, bootId: 'boot-2' });
  const again = other.rowsOf(batch).map((r) => r.values);
  assert.deepEqual(
    again.map((v) => v[COL.id]),
    [4, 5],
  );
  assert.deepEqual(other.appendRows(again), { inserted: 2, duplicates: 0 });
  other.close();
  assert.equal(store.queries.totals().events, 5);
  store.close();
});

test('a batch that fails part-way is rolled back whole, reported, and never thrown', () => {
  const errors: [StoreOp, unknown][] = [];
  const store = open((op, err) => errors.push([op, err]));
  const s = session('vm-a');
  const good = record({ session: s, seq: 1, timeMs: T0 });
  const bad = record({ session: session('vm-b', 2n), seq: 1, timeMs: T0 });
  (bad.event.vm as { id: unknown }).id = null; // violates events.vm NOT NULL
  assert.equal(store.append([good, bad]), null);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]![0], 'append');
  assert.match(String(errors[0]![1]), /NOT NULL/);
  assert.equal(store.queries.totals().events, 0);
  assert.deepEqual(store.queries.poisonedPages(), []);
  // The store keeps working for the next batch.
  assert.deepEqual(store.append([good]), { inserted: 1, duplicates: 0 });
  store.close();
  assert.equal(store.append([good]), null);
  assert.equal(errors.length, 2);
  assert.ok(isStoreError(errors[1]![1], 'SEAWALL_STORE_CLOSED'));
});

test('an APPLIED result goes to the newest event with its seq, once; unknown or evicted ones change nothing', () => {
  const store = open();
  const s = session('vm-a', 9n); // 8 vCPUs: up to 64 events await their APPLIED
  const ev = (seq: number, ord: number) => ({ ...record({ session: s, seq, timeMs: T0 + ord }), ord });
  const applied = (ord: number) =>
    store.db.prepare('SELECT applied FROM events WHERE session_id = 9 AND ord = ?').pluck().get(ord);
  // A 1.0 plugin need not send APPLIED: seq 5 is used again, and the result is for the newer event.
  store.append([ev(5, 1)]);
  store.append([ev(5, 2)]);
  store.markApplied(9n, 5, -5);
  assert.equal(applied(2), -5);
  assert.equal(applied(1), null);
  // Once taken, the entry is gone: a repeated APPLIED does not overwrite the first result.
  store.markApplied(9n, 5, -1);
  assert.equal(applied(2), -5);
  // An APPLIED for a seq no stored event awaits changes nothing.
  store.markApplied(9n, 77, 0);
  assert.equal(store.db.prepare('SELECT COUNT(*) FROM events WHERE applied IS NOT NULL').pluck().get(), 1);
  // 100 more events with no APPLIED: the oldest entries are dropped past the session's bound, so a
  // very late APPLIED finds nothing, and the newest still finds its event.
  store.append(Array.from({ length: 100 }, (_, i) => ev(100 + i, 3 + i)));
  store.markApplied(9n, 100, 0);
  assert.equal(applied(3), null, 'seq 100 was dropped: 36 entries past the bound of 64');
  store.markApplied(9n, 199, 0);
  assert.equal(applied(102), 0);
  // A closed session's entries go with it.
  store.append([ev(300, 200)]);
  store.sessionClosed(s, 'disconnect', null);
  store.markApplied(9n, 300, 0);
  assert.equal(applied(200), null);
  store.close();
});

test('APPLIED results, sessions and actions are recorded', () => {
  const store = open();
  const s = session('vm-a', 7n);
  store.sessionOpened(s);
  store.append([record({ session: s, seq: 5, timeMs: T0 })]);
  store.markApplied(7n, 5, -22);
  store.sessionClosed(s, 'disconnect', 'peer went away');
  assert.equal(store.queries.events()[0]!.applied, -22);
  const row = store.db.prepare('SELECT vm, outcome, detail FROM sessions WHERE session_id = 7').get();
  assert.deepEqual({ ...(row as object) }, { vm: 'vm-a', outcome: 'disconnect', detail: 'peer went away' });
  const action = store.recordAction({
    vm: 'vm-a',
    action: 'kill',
    rule: 'kill-uc',
    outcome: 'requested',
    timeMs: T0,
  });
  store.actionEnded(action, 'done', 'pidfd_send_signal SIGKILL');
  const [a] = store.queries.actions('vm-a');
  assert.equal(a?.outcome, 'done');
  assert.equal(a?.detail, 'pidfd_send_signal SIGKILL');
  assert.equal(store.queries.totals().actions, 1);
  store.close();
});

test('a session or action row landing before its start (a retried segment) leaves the same rows', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  let store = new EventStore({ path, bootId: 'boot-1' });
  const updates: StoreUpdate[] = [];
  store.update = (u) => updates.push(u);
  const s = session('vm-o', 3n);
  store.sessionOpened(s);
  const kill = store.recordAction({
    vm: 'vm-o',
    action: 'kill',
    rule: 'r',
    outcome: 'requested',
    timeMs: T0,
  });
  store.actionEnded(kill, 'timed_out', 'no exit in 5000 ms');
  store.sessionClosed(s, 'protocol_error', 'bad frame');
  // The ends first, then the starts; and each again, as a retry commits what already landed.
  for (const u of [...updates.reverse(), ...updates]) store.updateHere(u);
  const sessions = store.db.prepare('SELECT session_id, vm, vcpu_count, outcome, detail FROM sessions').all();
  assert.deepEqual(
    sessions.map((r) => ({ ...(r as object) })),
    [{ session_id: 3, vm: 'vm-o', vcpu_count: 8, outcome: 'protocol_error', detail: 'bad frame' }],
  );
  const actions = store.queries.actions('vm-o');
  assert.deepEqual(
    actions.map((a) => [a.action, a.rule, a.outcome, a.detail, a.timeMs]),
    [['kill', 'r', 'timed_out', 'no exit in 5000 ms', T0]],
  );
  // Ids are given before rows are written: a restart gives ids past every one in the file.
  store.close();
  store = new EventStore({ path, bootId: 'boot-2' });
  const next = store.recordAction({ vm: 'vm-o', action: 'migrate', rule: 'r', outcome: 'requested' });
  assert.equal(next[1], kill[1] + 1);
  assert.equal(store.queries.totals().actions, 2);
  store.close();
});

test('events are filtered by VM and time and limited to the newest, returned oldest first', () => {
  const store = open();
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  const batch = [];
  for (let i = 0; i < 10; i++) {
    batch.push(record({ session: a, seq: i, timeMs: T0 + i * 1000 }));
    batch.push(record({ session: b, seq: i, timeMs: T0 + i * 1000 + 1 }));
  }
  store.append(batch);
  const got = store.queries.events({ vm: 'vm-a', sinceMs: T0 + 3000, limit: 4 });
  assert.deepEqual(
    got.map((e) => [e.vm, e.timeMs]),
    [6, 7, 8, 9].map((i) => ['vm-a', T0 + i * 1000]),
  );
  assert.equal(store.queries.events({ sinceMs: T0 + 8000 }).length, 4);
  const vms = store.queries.vms();
  assert.deepEqual(
    vms.map((v) => [v.vm, v.events, v.poisonedPages, v.lastAction]),
    [
      ['vm-a', 10, 1, 'inject'],
      ['vm-b', 10, 1, 'inject'],
    ],
  );
  const t = store.queries.totals();
  assert.equal(t.events, 20);
  assert.equal(t.vms, 2);
  assert.deepEqual(t.byAction, { inject: 20 });
  assert.equal(t.oldestMs, T0);
  assert.ok(t.bytes > 0);
  store.close();
});

test('recentObservations visits what the policy state keeps of the newest events, oldest first', () => {
  const store = open();
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  // Several events share a time: the limit's cut falls inside them and must follow the id order.
  const records = [
    record({ session: a, seq: 1, timeMs: T0 - 5000 }),
    record({ session: a, seq: 2, timeMs: T0 + 10, gpa: 0x4000_1000n }),
    record({ session: b, seq: 1, timeMs: T0 + 20, gpa: null }),
    record({ session: a, seq: 3, timeMs: T0 + 20, gpa: 0x4000_2000n }),
    record({ session: b, seq: 2, timeMs: T0 + 20, gpa: 0x4000_3000n }),
    record({ session: a, seq: 4, timeMs: T0 + 30, gpa: 0x4000_1000n }),
  ];
  store.append(records);
  const visit = (since: number, limit?: number) => {
    const seen: [string, number, bigint | null][] = [];
    const n = store.queries.recentObservations(since, (vm, t, gpa) => seen.push([vm, t, gpa]), limit);
    assert.equal(n, seen.length);
    return seen;
  };
  assert.deepEqual(visit(T0), [
    ['vm-a', T0 + 10, 0x4000_1000n],
    ['vm-b', T0 + 20, null],
    ['vm-a', T0 + 20, 0x4000_2000n],
    ['vm-b', T0 + 20, 0x4000_3000n],
    ['vm-a', T0 + 30, 0x4000_1000n],
  ]);
  // The same events, in the same order, as the whole-event rebuild returns.
  assert.deepEqual(
    visit(0, 3),
    store.queries.recentPolicyEvents(0, 3).map((e) => [e.vm.id, e.timeMs, e.gpa]),
  );
  assert.equal(visit(0, 3)[0]?.[2], 0x4000_2000n, 'the cut inside equal times keeps the newest ids');
  assert.equal(visit(0).length, 6);
  assert.deepEqual(visit(T0 + 31), []);
  store.close();
});

test('recentPolicyEvents returns what the policy saw, oldest first, ESR decoded again', () => {
  const store = open();
  const s = session('vm-a', 1n, { tenant: 'blue', tier: 'gold' });
  const records = [
    record({ session: s, seq: 3, timeMs: T0 + 30, gpa: 0x4000_0000n, esr: 0x92001010n }),
    record({ session: s, seq: 1, timeMs: T0 + 10, gpa: null }),
    record({ session: s, seq: 2, timeMs: T0 + 20, replay: true }),
    record({ session: s, seq: 0, timeMs: T0 - 5000 }),
  ];
  store.append(records);
  const got = store.queries.recentPolicyEvents(T0);
  assert.equal(got.length, 3);
  const expected = [records[1]!, records[2]!, records[0]!].map((r) => r.event);
  assert.deepEqual(got, expected);
  assert.equal(got[2]!.esr?.raw, 0x92001010n);
  assert.equal(got[2]!.severity, 'uc');
  assert.equal(got[0]!.esr?.raw, SEA_ESR);
  // Labels are shared between a VM's events, not parsed once per row.
  assert.equal(got[0]!.vm.labels, got[1]!.vm.labels);
  // The limit keeps the newest.
  assert.deepEqual(
    store.queries.recentPolicyEvents(0, 2).map((e) => e.timeMs),
    [T0 + 20, T0 + 30],
  );
  store.close();
});

test('policyEventsBefore: the window before an event, and with its id the events of its millisecond stored before it', () => {
  const store = open();
  const s = session('vm-a');
  store.append([
    record({ session: s, seq: 1, timeMs: T0 - 700_000 }), // outside a 10-minute window
    record({ session: s, seq: 2, timeMs: T0 - 10 }),
    record({ session: s, seq: 3, timeMs: T0 }),
    record({ session: s, seq: 4, timeMs: T0 }),
    record({ session: s, seq: 5, timeMs: T0 }), // the explained event
    record({ session: s, seq: 6, timeMs: T0 }), // after it, in the same millisecond
  ]);
  const ids = store.queries.events({ vm: 'vm-a' }).map((e) => e.id);
  const times = (events: { timeMs: number }[]) => events.map((e) => e.timeMs - T0);
  const window = 600_000;
  assert.deepEqual(times(store.queries.policyEventsBefore(T0, window)), [-10], 'strictly before its time');
  assert.deepEqual(
    times(store.queries.policyEventsBefore(T0, window, undefined, ids[4] as number)),
    [-10, 0, 0],
    'and the two stored before it in its millisecond',
  );
  store.close();
});

test('a commit on the event loop waits out a write lock another connection commits under it', async (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const errors: unknown[] = [];
  const store = new EventStore({ path, bootId: 'boot-1', onError: (_op, err) => errors.push(err) });
  t.after(() => store.close());
  store.db.exec('CREATE TABLE scratch (x INTEGER)');
  // Long enough that a busy machine never outlasts it; the holder commits after ~300 ms.
  store.db.pragma('busy_timeout = 20000');
  // Another connection — the retention thread's, in the daemon — holds the write lock and then
  // commits a change: it runs on a thread of its own while this one waits in SQLite.
  const holder = new Worker(
    `const Database = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
     const { parentPort, workerData } = require('node:worker_threads');
     const db = new Database(workerData);
     db.exec('BEGIN IMMEDIATE');
     db.exec('INSERT INTO scratch VALUES (1)');
     parentPort.postMessage('locked');
     setTimeout(() => { db.exec('COMMIT'); db.close(); }, 300);`,
    { eval: true, workerData: path },
  );
  t.after(() => holder.terminate());
  await nextEvent(holder, 'message', 'the other connection to take the lock');
  // A transaction that read before it wrote (BEGIN DEFERRED) failed here at once, without its busy
  // timeout: SQLite does not wait for a lock on behalf of a read transaction that must become a
  // write one (the other writer's commit would leave it reading an old snapshot).
  const rows = store.rowsOf([record({ session: session('vm-l'), seq: 1, timeMs: T0 })]).map((r) => r.values);
  assert.deepEqual(store.appendRows(rows), { inserted: 1, duplicates: 0 }, String(errors[0]));
  assert.deepEqual(errors, []);
  assert.equal(
    store.db.prepare('SELECT COUNT(*) FROM scratch').pluck().get(),
    1,
    'the holder committed first',
  );
});
