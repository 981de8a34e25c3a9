/**
 * The write-ahead bound by session (store/write-ahead.ts `pressure`): at half of `maxInFlight`
 * rows in flight the sessions with the most of them are held — one VM's flood, not the VM beside
 * it — while the event loop goes on (no wait, no backpressure counted); they are read again once
 * the writer thread has committed down to a quarter, or at once when the store turns faulty
 * (rows are then held in memory under their own bound). Acknowledgements reach the event loop
 * only between its tasks, so what a synchronous run of `record` calls leaves is exact.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import type { SessionInfo } from '../../events/index.js';
import { EventStore, WriteAhead, type WriteAheadOptions } from '../../store/index.js';
import { until } from '../helpers/wait.js';
import { lockDatabase, record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(opts: WriteAheadOptions = {}) {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const errors: unknown[] = [];
  const store = new EventStore({ path, onError: (_op, err) => errors.push(err) });
  const holds: bigint[][] = [];
  /** Each release: the sessions read again, and the rows then still in flight. */
  const released: { ids: bigint[]; pending: number }[] = [];
  const pressure = {
    holds,
    released,
    get releases() {
      return released.length;
    },
  };
  const ahead: WriteAhead = new WriteAhead(store, {
    // Every fifth row hands the file over; nothing waits for a timer.
    flushMs: 3_600_000,
    maxPending: 5,
    maxInFlight: 100,
    onError: (_op, err) => errors.push(err),
    pressure: {
      hold: (ids) => {
        holds.push([...ids].sort());
        return ids.length;
      },
      release: (ids) => {
        released.push({ ids: [...ids].sort(), pending: ahead.pending });
      },
    },
    ...opts,
  });
  return { path, store, ahead, errors, pressure };
}

/** `n` rows of `s` from seq `from`, recorded five to a batch, as five verdicts of a tick would be. */
function flood(ahead: WriteAhead, s: SessionInfo, from: number, n: number): void {
  for (let seq = from; seq < from + n; seq += 5) {
    const batch = [];
    for (let i = seq; i < Math.min(seq + 5, from + n); i++)
      batch.push(record({ session: s, seq: i, timeMs: T0 + i }));
    ahead.record(batch);
  }
}

test("half the bound in flight holds the flooding VM's session, not the quiet one's, and nobody waits", async () => {
  // No stall check reads the session again (waitMs): only the commits can.
  const { store, ahead, errors, pressure } = open({ waitMs: 60_000 });
  const quiet = session('vm-quiet', 1n);
  const loud = session('vm-loud', 2n);
  flood(ahead, quiet, 1, 5);
  flood(ahead, loud, 1, 40);
  assert.deepEqual(pressure.holds, [], '45 of 100 in flight: below half');
  flood(ahead, loud, 41, 5);
  assert.deepEqual(pressure.holds, [[2n]], 'at 50 of 100, the session with 45 of them');
  // The quiet VM's rows still go in, and it is not held for them.
  flood(ahead, quiet, 6, 5);
  assert.deepEqual(pressure.holds, [[2n]], 'held already: not held again');
  assert.equal(ahead.pressures, 1, 'one session held');
  assert.equal(ahead.backpressureMs, 0, 'the event loop never waited');
  assert.equal(pressure.releases, 0);
  // Nothing here reads or flushes: only the writer thread's acknowledgements bring it down.
  await until('the held session to be read again', () => pressure.releases === 1, {
    state: () => `${ahead.pending} rows pending`,
  });
  assert.deepEqual(
    pressure.released.map((r) => r.ids),
    [[2n]],
  );
  await until('every row to be committed', () => ahead.pending === 0);
  assert.equal(store.queries.totals().events, 55);
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});

test('VMs filling the bound together are held as they reach their even share', () => {
  const { store, ahead, pressure } = open();
  const [a, b, c] = [session('vm-a', 1n), session('vm-b', 2n), session('vm-c', 3n)];
  flood(ahead, a, 1, 20);
  flood(ahead, b, 1, 20);
  flood(ahead, c, 1, 5);
  flood(ahead, c, 6, 5);
  // 20, 20, 10 in flight: a and b are at or above the even share of 16⅔.
  assert.deepEqual(pressure.holds, [[1n, 2n]]);
  flood(ahead, c, 11, 15);
  // 20, 20, 25 by the last hand-over: the even share is 21⅔, only c reaches it.
  assert.deepEqual(pressure.holds.at(-1), [3n]);
  assert.equal(ahead.backpressureMs, 0);
  ahead.close();
  store.close();
});

test('a store fault reads the held sessions again: their rows are then held in memory, under their own bound', async (t) => {
  // One segment of 50: the thread's commit waits out its busy timeout once, and fails. No stall
  // check reads the session again first (waitMs).
  const { path, store, ahead, errors, pressure } = open({ maxPending: 50, waitMs: 60_000 });
  const loud = session('vm-loud', 2n);
  const unlock = lockDatabase(t, path);
  flood(ahead, loud, 1, 50);
  assert.deepEqual(pressure.holds, [[2n]]);
  await until('the fault to read the held session again', () => pressure.releases === 1);
  assert.equal(ahead.health.healthy, false, 'released by the fault, not by commits');
  assert.equal(ahead.pending, 50, 'the segment is still in flight, for the retry');
  // Through the fault nothing is held for the store.
  flood(ahead, loud, 51, 50);
  assert.equal(pressure.holds.length, 1, 'no hold while faulty');
  unlock();
  await until(
    'the store to recover and commit every row',
    () => ahead.health.healthy && ahead.pending === 0,
    {
      state: () => `${ahead.pending} pending, health ${JSON.stringify(ahead.health)}`,
    },
  );
  assert.equal(store.queries.totals().events, 100);
  ahead.close();
  store.close();
  assert.ok(errors.length > 0, 'the fault was reported');
});

test('a thread that commits nothing for waitMs does not keep the held sessions waiting on it', async (t) => {
  // The lock makes the thread wait out its busy timeout (2 s) before it fails: long before that,
  // a check finds nothing committed for waitMs.
  const { path, store, ahead, pressure } = open({ maxPending: 50, waitMs: 100, checkMs: 20 });
  const loud = session('vm-loud', 2n);
  const unlock = lockDatabase(t, path);
  flood(ahead, loud, 1, 50);
  assert.deepEqual(pressure.holds, [[2n]]);
  await until('the held session to be read again', () => pressure.releases === 1);
  assert.equal(ahead.health.healthy, true, 'released before any fault: the thread is still waiting');
  assert.equal(ahead.pending, 50, 'nothing committed');
  // Until the thread commits something, no session is held again: maxInFlight bounds alone.
  flood(ahead, loud, 51, 50);
  assert.equal(pressure.holds.length, 1, 'no hold while the thread commits nothing');
  unlock();
  await until('every row to be committed', () => ahead.health.healthy && ahead.pending === 0, {
    state: () => `${ahead.pending} pending, health ${JSON.stringify(ahead.health)}`,
  });
  // Committed again: the next half of the bound in flight holds again.
  flood(ahead, loud, 101, 50);
  assert.deepEqual(pressure.holds.at(-1), [2n]);
  assert.equal(pressure.holds.length, 2);
  ahead.close();
  assert.equal(store.queries.totals().events, 150);
  store.close();
});

test('a held session is read again once its own rows are committed, however long others keep the backlog up', async () => {
  // No stall check reads the session again (waitMs): only the commits can.
  const { store, ahead, errors, pressure } = open({ waitMs: 60_000 });
  const victim = session('vm-victim', 1n);
  const vms = (from: number) =>
    Array.from({ length: 30 }, (_, i) => session(`vm-${from + i}`, BigInt(from + i)));
  /** One row of each of these VMs, five to a batch. */
  const oneEach = (group: SessionInfo[]) => {
    for (let i = 0; i < group.length; i += 5)
      ahead.record(group.slice(i, i + 5).map((s) => record({ session: s, seq: 1, timeMs: T0 + 1 })));
  };
  oneEach(vms(100));
  flood(ahead, victim, 1, 20);
  // 30 rows of 30 VMs, then 20 of one: at 50 of 100, that one alone has its even share.
  assert.deepEqual(pressure.holds, [[1n]]);
  // 30 more VMs send one row each, below their even share, and are never held: their rows queue
  // behind the victim's, so when its last segment is committed 30 rows are still in flight,
  // above a quarter.
  oneEach(vms(200));
  assert.deepEqual(pressure.holds, [[1n]]);
  await until('the victim to be read again', () => pressure.releases >= 1);
  const first = pressure.released[0];
  assert.deepEqual(first?.ids, [1n], 'the victim alone, once its rows were committed');
  assert.ok(
    (first?.pending ?? 0) > 25,
    `read again with ${first?.pending} of 100 in flight, above a quarter`,
  );
  await until('every row to be committed', () => ahead.pending === 0);
  assert.equal(store.queries.totals().events, 80);
  ahead.close();
  store.close();
  assert.deepEqual(errors, []);
});
