/**
 * Retention on a real file: by age, by size in chunks, poisoned pages kept, bad options refused,
 * the row of the highest id kept.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { EventStore, isStoreError, Retention } from '../../store/index.js';
import { prune } from '../../store/prune.js';
import { until, within } from '../helpers/wait.js';
import { countInDatabaseFile, record, session, tempStorePath } from './records.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const DAY = 86_400_000;
const NOW = 1_750_000_000_000;

function open(): EventStore {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  return new EventStore({ path, bootId: 'b' });
}

test('events older than maxAgeDays go; their poisoned pages and newer events stay', async () => {
  const store = open();
  const s = session('vm-a');
  store.append([
    record({ session: s, seq: 1, timeMs: NOW - 100 * DAY, gpa: 0x1000n }),
    record({ session: s, seq: 2, timeMs: NOW - 91 * DAY, gpa: 0x2000n }),
    record({ session: s, seq: 3, timeMs: NOW - 89 * DAY, gpa: 0x3000n }),
    record({ session: s, seq: 4, timeMs: NOW - DAY, gpa: 0x3000n }),
  ]);
  store.recordAction({ vm: 'vm-a', action: 'kill', rule: 'r', outcome: 'done', timeMs: NOW - 95 * DAY });
  const retention = new Retention(store, { now: () => NOW, chunkRows: 1 });
  const run = await retention.run();
  assert.ok(run);
  assert.deepEqual([run.deletedByAge, run.deletedBySize], [2, 0]);
  assert.deepEqual(
    store.queries.events().map((e) => e.seq),
    [3, 4],
  );
  assert.equal(store.queries.poisonedPages('vm-a').length, 3);
  assert.equal(store.queries.actions().length, 0);
  await retention.stop();
  store.close();
});

/** 2,000 events of ~1 KB in one store: more than 3 times a bound of 256 KiB. */
function bigStore(): EventStore {
  const store = open();
  const s = session('vm-big', 1n, { blob: 'x'.repeat(400) });
  for (let b = 0; b < 20; b++) {
    const batch = [];
    for (let i = 0; i < 100; i++) {
      const seq = b * 100 + i;
      batch.push(record({ session: s, seq, timeMs: NOW - 10_000 + seq, gpa: BigInt(seq % 50) << 12n }));
    }
    store.append(batch);
  }
  return store;
}

test('over maxBytes the oldest events are deleted in chunks until the data fits', async () => {
  const store = bigStore();
  const maxBytes = 256 * 1024;
  assert.ok(store.queries.usedBytes() > maxBytes * 2, 'the test data must exceed the bound');
  const pagesBefore = store.queries.poisonedPages();
  const fileBytesBefore = store.db.pragma('page_count', { simple: true }) as number;
  const retention = new Retention(store, { now: () => NOW, maxBytes, chunkRows: 100 });
  const run = await retention.run();
  assert.ok(run);
  assert.equal(run.deletedByAge, 0);
  assert.ok(run.deletedBySize > 0);
  assert.ok(run.slices >= Math.ceil(run.deletedBySize / 100), `no statement deletes more than chunkRows`);
  assert.ok(run.bytes <= maxBytes, `${run.bytes} <= ${maxBytes}`);
  assert.ok(run.bytes > maxBytes * 0.8, `stopped at the bound, not past it: ${run.bytes} bytes kept`);
  const left = store.queries.events({ limit: 10_000 });
  assert.equal(left.length, 2000 - run.deletedBySize);
  assert.equal(left.at(-1)?.seq, 1999, 'the newest event is kept');
  assert.equal(left[0]?.seq, run.deletedBySize, 'exactly the oldest were deleted');
  assert.deepEqual(store.queries.poisonedPages(), pagesBefore);
  assert.ok((store.db.pragma('page_count', { simple: true }) as number) < fileBytesBefore, 'the file shrank');
  await retention.stop();
  store.close();
});

test("the retention thread checkpoints its own deletes: they never pile up in the WAL for a commit of the event loop's", async (t) => {
  const store = bigStore();
  const { path } = store;
  // The event loop's connection left the inserts in the WAL (it checkpoints only past
  // AUTOCHECKPOINT_PAGES): the file alone holds none of them yet.
  assert.equal(countInDatabaseFile(t, path, 'sqlite_schema'), 0);
  const retention = new Retention(store, { now: () => NOW, maxBytes: 256 * 1024, chunkRows: 100 });
  t.after(async () => {
    await retention.stop();
    store.close();
  });
  const run = await retention.run();
  assert.ok(run && run.deletedBySize > 1000, 'the deletes and the vacuum write more than 1,000 WAL pages');
  // Its commits checkpointed as SQLite's default has it (past 1,000 pages): the file alone now
  // holds the events, less at least some of the deleted ones.
  const inFile = countInDatabaseFile(t, path, 'event_rows');
  assert.ok(inFile < 2000, `${inFile} events in the file alone`);
  assert.ok(inFile >= 2000 - run.deletedBySize);
});

test('each slice takes about sliceMs, learned from the slice before; without a bound the deletes stop at the bound', async () => {
  // A clock on which each deleted event, and each page handed back to the file system, costs
  // 1/8 ms: a 2 ms slice fits 16 of them.
  const env = (store: EventStore) => {
    const count = store.db.prepare('SELECT count(*) FROM events').pluck();
    const pages = () => store.db.pragma('page_count', { simple: true }) as number;
    const [events0, pages0] = [count.get() as number, pages()];
    const paused: number[] = [];
    const clock = () => (events0 - (count.get() as number) + pages0 - pages()) / 8;
    const pause = (ms: number) => {
      paused.push(ms);
      return undefined;
    };
    return { clock, pause, stopped: () => false, paused };
  };
  const opts = { cutoffMs: NOW - 90 * DAY, maxBytes: 256 * 1024, chunkRows: 5000 };
  const sliced = bigStore();
  const slicedEnv = env(sliced);
  const run = await prune(sliced.db, { ...opts, sliceMs: 2 }, slicedEnv);
  assert.ok(run.deletedBySize > 1000, `${run.deletedBySize} deleted`);
  assert.ok(run.longestSliceMs <= 2, `longest slice ${run.longestSliceMs} ms`);
  assert.ok(run.slices >= run.deletedBySize / 16, `${run.slices} slices for ${run.deletedBySize} events`);
  assert.equal(slicedEnv.paused.length, run.slices, 'a pause after every slice');
  assert.ok(run.bytes <= 256 * 1024);
  sliced.close();

  const whole = bigStore();
  const unbounded = await prune(whole.db, { ...opts, sliceMs: Number.POSITIVE_INFINITY }, env(whole));
  // The age pass and the three tables beside the events (nothing to delete), a delete of as many rows as the data over the bound holds
  // (a chunk of 5,000 took all 2,000 events), what it left over the bound, one vacuum.
  assert.ok(unbounded.slices <= 9, `${unbounded.slices} slices`);
  assert.ok(unbounded.longestSliceMs >= 100, `${unbounded.longestSliceMs} ms`);
  assert.ok(unbounded.bytes <= opts.maxBytes, `${unbounded.bytes} <= ${opts.maxBytes}`);
  // Stopped at the bound, not past it: the events kept fill most of it.
  const kept = whole.queries.events({ limit: 10_000 });
  assert.equal(kept.length, 2000 - unbounded.deletedBySize);
  assert.ok(unbounded.bytes > opts.maxBytes * 0.8, `${unbounded.bytes} bytes kept of ${opts.maxBytes}`);
  assert.equal(kept.at(-1)?.seq, 1999, 'the newest event is kept');
  whole.close();
});

test('a slice grows to at most twice the one before, however cheap that one looked', async () => {
  // Each deleted event costs 1/1000 ms: a 2 ms slice would fit 2,000 after the first quick one.
  const store = bigStore();
  const count = store.db.prepare('SELECT count(*) FROM events').pluck();
  const events0 = count.get() as number;
  const sizes: number[] = [];
  let seen = events0;
  const env = {
    clock: () => (events0 - (count.get() as number)) / 1000,
    pause: () => {
      const now = count.get() as number;
      if (now !== seen) sizes.push(seen - now);
      seen = now;
      return undefined;
    },
    stopped: () => false,
  };
  const opts = { cutoffMs: NOW - 90 * DAY, maxBytes: 256 * 1024, chunkRows: 300, sliceMs: 2 };
  const run = await prune(store.db, opts, env);
  assert.ok(run.deletedBySize > 600, `${run.deletedBySize} deleted`);
  // 16, then doubling, then held at chunkRows (the last slice may find fewer left to delete).
  assert.deepEqual(sizes.slice(0, 6), [16, 32, 64, 128, 256, 300]);
  assert.ok(
    sizes.slice(5, -1).every((n) => n === 300),
    `every later slice takes chunkRows: ${sizes.join(', ')}`,
  );
  store.close();
});

test('a file without incremental auto-vacuum is pruned too; its free pages stay for reuse', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  // A file made with auto_vacuum off (the default of SQLite), then opened as the event store.
  const plain = new Database(path);
  plain.pragma('auto_vacuum = NONE');
  plain.exec('CREATE TABLE made_before (x)');
  plain.close();
  const store = new EventStore({ path, bootId: 'b' });
  const s = session('vm-plain', 1n, { blob: 'x'.repeat(400) });
  store.append(
    Array.from({ length: 500 }, (_, seq) => record({ session: s, seq, timeMs: NOW - 10_000 + seq })),
  );
  // A pass that kept asking to vacuum would never end: stopped after 1,000 slices, it fails below.
  let pauses = 0;
  const env = { clock: () => 0, pause: () => void pauses++, stopped: () => pauses > 1000 };
  // Twice the least bound: the tables beside the events take 15 pages (60 KiB) of an empty store.
  const opts = { cutoffMs: NOW - 90 * DAY, maxBytes: 131_072, chunkRows: 100, sliceMs: 2 };
  const run = await prune(store.db, opts, env);
  assert.ok(run.deletedBySize > 0);
  assert.ok(pauses < 1000, `the pass ended by itself (${pauses} slices)`);
  assert.ok((store.db.pragma('freelist_count', { simple: true }) as number) > 0, 'free pages kept');
  store.close();
});

test('stop() ends a pass running on the retention thread at its next slice', async () => {
  const store = bigStore();
  // One event a slice, each followed by a pause: 2,000 of them would take a while.
  const retention = new Retention(store, { now: () => NOW, maxBytes: 131_072, chunkRows: 1 });
  const running = retention.run();
  await until('the pass to delete its first events', () => {
    return (store.db.prepare('SELECT count(*) FROM events').pluck().get() as number) < 2000;
  });
  await retention.stop();
  const run = await running;
  assert.ok(run, 'the pass ended with what it had done');
  assert.ok(run.deletedBySize > 0 && run.deletedBySize < 2000, `${run.deletedBySize} of 2,000 deleted`);
  assert.equal(store.db.prepare('SELECT count(*) FROM events').pluck().get(), 2000 - run.deletedBySize);
  store.close();
});

test('the timer is unref’d and stop() ends it; bad options are refused', async () => {
  const store = open();
  const retention = new Retention(store, { intervalMs: 1000 });
  retention.start();
  await retention.stop(); // nothing keeps the process alive or running after this
  assert.throws(
    () => new Retention(store, { maxBytes: 10 }),
    (err: unknown) => isStoreError(err, 'SEAWALL_STORE_INVALID_OPTION'),
  );
  assert.throws(
    () => new Retention(store, { maxAgeDays: -1 }),
    (err: unknown) => isStoreError(err, 'SEAWALL_STORE_INVALID_OPTION'),
  );
  store.close();
});

test('poisoned pages over maxBytes are reported, and cost no event: the events keep what those tables leave', async (t) => {
  const store = open();
  // A plugin that made up addresses: 40,000 poisoned pages, ~2.5 MB, well over a bound of 1 MiB.
  const page = store.db.prepare(
    'INSERT INTO poisoned_pages (vm, gpa, first_seen_ms, last_seen_ms, count) VALUES (?, ?, 1, 1, 1)',
  );
  store.db.transaction(() => {
    for (let i = 0; i < 40_000; i++) page.run('flooder', `0x${(i * 4096).toString(16).padStart(16, '0')}`);
  })();
  // Then a VM's 200 events of the last minute.
  const s = session('vm-good');
  store.append(
    Array.from({ length: 200 }, (_, i) =>
      record({ session: s, seq: i + 1, timeMs: NOW - 60_000 + i, gpa: 0x5000n }),
    ),
  );
  const maxBytes = 1024 * 1024;
  assert.ok(store.queries.usedBytes() > maxBytes, 'the store exceeds the bound');
  const reported: unknown[] = [];
  const retention = new Retention(store, {
    now: () => NOW,
    maxBytes,
    onError: (_op, err) => reported.push(err),
  });
  t.after(async () => {
    await retention.stop();
    store.close();
  });
  for (let pass = 0; pass < 2; pass++) {
    const run = await retention.run();
    assert.ok(run);
    assert.equal(run.deletedBySize, 0, 'no event is deleted for the pages');
    assert.ok(run.keptBytes > maxBytes && run.eventBytes < maxBytes, JSON.stringify(run));
    assert.equal(store.queries.events({ limit: 1000 }).length, 200);
  }
  assert.equal(reported.length, 2, 'each pass says the kept tables exceed the bound');
  assert.ok(reported.every((e) => isStoreError(e, 'SEAWALL_STORE_PRUNE')));
  assert.match(
    String((reported[0] as Error).message),
    /alone hold \d+ bytes, over retention\.maxBytes \(1048576\)/,
  );
});

test('retention keeps the row of the highest id, so the next start never gives it again', async (t) => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  const a = session('vm-a', 1n);
  store.append([
    record({ session: a, seq: 1, timeMs: NOW - 200 * DAY }),
    record({ session: a, seq: 2, timeMs: NOW }),
  ]);
  // Stored last, at its own time long past: every row but it is within reach of retention by age.
  store.append([record({ session: a, seq: 3, timeMs: NOW - 100 * DAY, replay: true })]);
  const retention = new Retention(store, { now: () => NOW, chunkRows: 1 });
  try {
    const run = await retention.run();
    assert.equal(run?.deletedByAge, 1, 'the oldest went');
    assert.deepEqual(
      byId(store).map((e) => [e.id, e.seq]),
      [
        [2, 2],
        [3, 3],
      ],
      'the replay of the highest id stays, older than the bound',
    );
  } finally {
    await retention.stop();
    store.close();
  }
  const next = new EventStore({ path, bootId: 'next' });
  t.after(() => next.close());
  next.append([record({ session: a, seq: 4, timeMs: NOW })]);
  assert.equal(byId(next).pop()?.seq, 4);
  assert.equal(byId(next).pop()?.id, 4, 'the next start gives ids past it');
});

const byId = (store: EventStore) => store.queries.events({ limit: 100 }).sort((x, y) => x.id - y.id);

test('the retention thread is not kept between passes', async (t) => {
  const store = open();
  const retention = new Retention(store, { now: () => NOW, threadIdleMs: 50 });
  t.after(async () => {
    await retention.stop();
    store.close();
  });
  const s = session('vm-a');
  // The row of the highest id is always kept: each pass has a recent one above its old one.
  store.append([
    record({ session: s, seq: 1, timeMs: NOW - 100 * DAY }),
    record({ session: s, seq: 2, timeMs: NOW }),
  ]);
  assert.equal((await within('a pass', retention.run()))?.deletedByAge, 1);
  await until('the idle retention thread to end', () => !retention.threadRunning);
  store.append([
    record({ session: s, seq: 3, timeMs: NOW - 100 * DAY }),
    record({ session: s, seq: 4, timeMs: NOW }),
  ]);
  assert.equal((await within('a pass on a new thread', retention.run()))?.deletedByAge, 1);
});

test('old actions, closed sessions and waiting results go in slices of at most chunkRows, the writer committing between them', async (t) => {
  const store = open();
  t.after(() => store.close());
  const old = NOW - 100 * DAY;
  const recent = NOW - DAY;
  const session = store.db.prepare(
    "INSERT INTO sessions VALUES ('b', ?, 'vm-s', '{}', 1, 1, 0, 0, ?, ?, 'normal', NULL)",
  );
  const action = store.db.prepare(
    "INSERT INTO actions (time_ms, vm, action, outcome, updated_ms) VALUES (?, 'vm-s', 'kill', 'done', ?)",
  );
  const waiting = store.db.prepare('INSERT INTO applied_waiting VALUES (?, 1, ?, 0, ?, NULL)');
  store.db.transaction(() => {
    // 600 old closed sessions, 50 recent ones, 30 old but still open (no closed_ms): kept.
    for (let i = 0; i < 680; i++) session.run(i, old, i < 600 ? old : i < 650 ? recent : null);
    for (let i = 0; i < 450; i++) action.run(i < 400 ? old : recent, 0);
    for (let i = 0; i < 330; i++) waiting.run(`boot-${i % 3}`, i, i < 300 ? old : recent);
  })();
  const tables = ['sessions', 'actions', 'applied_waiting'] as const;
  const counts = () =>
    tables.map((name) => store.db.prepare(`SELECT count(*) FROM ${name}`).pluck().get() as number);
  // A second connection, as the writer thread, commits in every pause without waiting for the lock.
  const writer = new Database(store.path);
  t.after(() => writer.close());
  writer.pragma('busy_timeout = 0');
  writer.exec('CREATE TABLE probe (n INTEGER)');
  const probe = writer.transaction((n: number) => writer.prepare('INSERT INTO probe VALUES (?)').run(n));
  const steps: number[][] = [];
  let seen = counts();
  const env = {
    clock: () => 0,
    pause: () => {
      probe.immediate(steps.length);
      const now = counts();
      steps.push(seen.map((n, i) => n - (now[i] as number)));
      seen = now;
      return undefined;
    },
    stopped: () => false,
  };
  const run = await prune(
    store.db,
    { cutoffMs: NOW - 90 * DAY, maxBytes: 1 << 30, chunkRows: 50, sliceMs: 2 },
    env,
  );
  assert.equal(run.deletedOthers, 600 + 400 + 300);
  assert.equal(run.deletedByAge + run.deletedBySize, 0, 'no event was counted');
  assert.deepEqual(counts(), [80, 50, 30], 'the recent rows and the open sessions stay');
  for (const [i, name] of tables.entries()) {
    const deletes = steps.map((s) => s[i] as number).filter((n) => n > 0);
    assert.ok(
      deletes.every((n) => n <= 50),
      `${name} deleted at most chunkRows at a time: ${deletes.join(', ')}`,
    );
    assert.ok(deletes.length >= 6, `${name} in ${deletes.length} slices`);
  }
  assert.equal(run.slices, steps.length, 'a pause after every slice');
  assert.equal(writer.prepare('SELECT count(*) FROM probe').pluck().get(), run.slices);
});
