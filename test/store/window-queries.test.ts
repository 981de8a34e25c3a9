/**
 * The windows `seawall why` reads: a VM's window is a range of the (vm, time) index, the host's
 * one of the time index, and each reads a bounded share of its range (its count is then a lower
 * bound).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type Database from 'better-sqlite3';
import { WINDOW_SCAN_ROWS } from '../../store/window-queries.js';
import { record, scratchStore, session } from './records.js';

const T0 = 1_700_000_000_000;

function plan(db: Database.Database, stmt: Database.Statement): string {
  const params = { vm: 'vm-a', gpa: null, after: 0, t: 1, id: 1, incl: 1, scan: 1, limit: 1 };
  const rows = db.prepare(`EXPLAIN QUERY PLAN ${stmt.source}`).all(params) as { detail: string }[];
  return rows.map((r) => r.detail).join('\n');
}

test("a VM's window is searched on the (vm, time) index, the host's on the time index", (t) => {
  const store = scratchStore(t);
  for (const [scope, index] of [
    ['vm', /SEARCH event_rows USING INDEX events_vm_time \(vm=\? AND time_ms>\? AND time_ms<\?\)/],
    ['host', /SEARCH event_rows USING INDEX events_time \(time_ms>\? AND time_ms<\?\)/],
  ] as const) {
    const { rows, count } = store.queries.windowStatements(scope);
    for (const stmt of [rows, count]) {
      const p = plan(store.db, stmt);
      assert.match(p, index, `${scope}: ${stmt.source}\n${p}`);
      assert.doesNotMatch(p, /SCAN event_rows|TEMP B-TREE/, p);
    }
  }
});

test('a window counts its own scope, and past its bound says the count is a lower bound', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a');
  const b = session('vm-b', 2n);
  const n = WINDOW_SCAN_ROWS + 5;
  const rows = [];
  for (let i = 1; i <= n; i++)
    rows.push(record({ session: a, seq: i, timeMs: T0 + i, gpa: BigInt(i % 2) << 12n }));
  for (let i = 1; i <= 30; i++) rows.push(record({ session: b, seq: i, timeMs: T0 + i }));
  store.append(rows);
  const last = store.queries.events({ vm: 'vm-a', limit: 1 })[0];
  assert.ok(last);
  const at = { timeMs: last.timeMs, id: last.id };

  // Thirty events of vm-b among vm-a's, in a window of 20 ms: vm-b's own 19 (times 11–29) and no other.
  const bLast = store.queries.events({ vm: 'vm-b', limit: 1 })[0];
  assert.ok(bLast);
  const bw = store.queries.window({
    vm: 'vm-b',
    afterMs: bLast.timeMs - 20,
    at: { timeMs: bLast.timeMs, id: bLast.id },
    inclusive: false,
    limit: 5,
  });
  assert.deepEqual({ count: bw.count, atLeast: bw.atLeast }, { count: 19, atLeast: false });
  assert.deepEqual(
    bw.events.map((e) => [e.vm, e.timeMs - T0]),
    [25, 26, 27, 28, 29].map((i) => ['vm-b', i]),
  );

  // All of vm-a's history: more than a window reads.
  const all = store.queries.window({ vm: 'vm-a', afterMs: -1, at, inclusive: true, limit: 3 });
  assert.deepEqual({ count: all.count, atLeast: all.atLeast }, { count: WINDOW_SCAN_ROWS, atLeast: true });
  assert.deepEqual(
    all.events.map((e) => e.timeMs - T0),
    [n - 2, n - 1, n],
  );
  // One page's earlier errors, among the newest rows read: every other one.
  const page = store.queries.window({
    vm: 'vm-a',
    gpa: '0x0000000000001000',
    afterMs: -1,
    at,
    inclusive: false,
    limit: 2,
  });
  assert.equal(page.atLeast, true);
  assert.equal(page.count, WINDOW_SCAN_ROWS / 2);
  assert.ok(page.events.every((e) => e.gpa === '0x0000000000001000' && e.vm === 'vm-a'));
  // The host's window over the last 10 ms of vm-a: both VMs' events are in it, none of vm-b's here.
  const host = store.queries.window({ afterMs: at.timeMs - 10, at, inclusive: true, limit: 20 });
  assert.deepEqual({ count: host.count, atLeast: host.atLeast }, { count: 10, atLeast: false });
});
