/**
 * The store's read side: poisoned pages and events are paged by seeking their index from the
 * cursor, however deep.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventStore } from '../../store/index.js';
import { record, scratchStore, session } from './records.js';

const T0 = 1_700_000_000_000;

const gpa = (i: number): string => `0x${(i * 4096).toString(16).padStart(16, '0')}`;

/** Each statement's query plan, its steps joined. */
function plans(
  store: EventStore,
  statements: Readonly<Record<string, { source: string }>>,
  params: Record<string, unknown>,
): Record<string, string> {
  const plan = ({ source }: { source: string }): string =>
    (store.db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(params) as { detail: string }[])
      .map((r) => r.detail)
      .join('; ');
  return Object.fromEntries(Object.entries(statements).map(([name, stmt]) => [name, plan(stmt)]));
}

test('each page of poisoned pages after the first is a seek on the primary key, not a scan', (t) => {
  const store = scratchStore(t);
  const params = { vm: 'vm-a', av: 'vm-a', ag: gpa(1), limit: 10 };
  assert.deepEqual(plans(store, store.queries.poisonStatements(), params), {
    // The first page reads the table in key order and stops at its limit.
    first: 'SCAN poisoned_pages',
    after: 'SEARCH poisoned_pages USING PRIMARY KEY ((vm,gpa)>(?,?))',
    byVmFirst: 'SEARCH poisoned_pages USING PRIMARY KEY (vm=?)',
    byVmAfter: 'SEARCH poisoned_pages USING PRIMARY KEY (vm=? AND gpa>?)',
  });
});

test('paging through poisoned pages, of all VMs or one, returns each page once, in order', (t) => {
  const store = scratchStore(t);
  const insert = store.db.prepare(
    'INSERT INTO poisoned_pages (vm, gpa, first_seen_ms, last_seen_ms, count) VALUES (?, ?, 1, 1, 1)',
  );
  const want: string[] = [];
  store.db.transaction(() => {
    for (const vm of ['vm-a', 'vm-b', 'vm-c'])
      for (let i = 0; i < 25; i++) {
        insert.run(vm, gpa(i));
        want.push(`${vm} ${gpa(i)}`);
      }
  })();
  const walk = (vm?: string): string[] => {
    const seen: string[] = [];
    let after: { vm: string; gpa: string } | undefined;
    for (;;) {
      const page = store.queries.poisonedPages(vm, 10, after);
      seen.push(...page.map((p) => `${p.vm} ${p.gpa}`));
      const last = page.at(-1);
      if (page.length < 10 || !last) return seen;
      after = { vm: last.vm, gpa: last.gpa };
    }
  };
  assert.deepEqual(walk(), want);
  assert.deepEqual(
    walk('vm-b'),
    want.filter((p) => p.startsWith('vm-b ')),
  );
});

test('a page of VMs walks the indexes from its cursor, and each VM its own entries', (t) => {
  const store = scratchStore(t);
  const plan = (stmt: { source: string }, params: Record<string, unknown>): string[] =>
    (store.db.prepare(`EXPLAIN QUERY PLAN ${stmt.source}`).all(params) as { detail: string }[]).map(
      (r) => r.detail,
    );
  const { page, row } = store.queries.vmStatements();
  const pagePlan = plan(page, { after: 'vm-a', connected: '[]', limit: 10 });
  assert.ok(
    pagePlan.includes('SEARCH event_rows USING COVERING INDEX events_vm_time (vm>?)'),
    pagePlan.join('; '),
  );
  assert.ok(pagePlan.includes('SEARCH poisoned_pages USING PRIMARY KEY (vm>?)'), pagePlan.join('; '));
  assert.ok(!pagePlan.some((d) => /SCAN (event_rows|poisoned_pages)/.test(d)), pagePlan.join('; '));
  const rowPlan = plan(row, { vm: 'vm-a' });
  assert.ok(!rowPlan.some((d) => /SCAN (event_rows|poisoned_pages)/.test(d)), rowPlan.join('; '));
});

test('paging through VMs: stored, kept by their pages only, or connected, each once, in the order of their bytes', (t) => {
  const store = scratchStore(t);
  // UTF-16 puts U+FFFD after the surrogates of U+1F600; UTF-8, and so SQLite, before them.
  const stored = ['vm-a', 'vm-\u{1f600}', 'vm-\ufffd', 'vm-old'];
  const batch = stored.flatMap((vm, i) =>
    [0, 1, 2].map((k) =>
      record({
        session: session(vm, BigInt(i + 1)),
        seq: k + 1,
        timeMs: T0 + k * 1000,
        gpa: BigInt(k % 2) << 12n,
      }),
    ),
  );
  store.append(batch);
  // Retention took vm-old's events; its poisoned pages are never pruned.
  store.db.prepare("DELETE FROM event_rows WHERE vm = 'vm-old'").run();
  const connected = ['vm-live', 'vm-a', 'vm-\ufffd'];
  const all = store.queries.vms(connected);
  assert.deepEqual(
    all.map((v) => [v.vm, v.connected, v.events, v.poisonedPages, v.lastAction, v.lastSeenMs]),
    [
      ['vm-a', true, 3, 2, 'inject', T0 + 2000],
      ['vm-live', true, 0, 0, null, null],
      ['vm-old', false, 0, 2, null, null],
      ['vm-\ufffd', true, 3, 2, 'inject', T0 + 2000],
      ['vm-\u{1f600}', false, 3, 2, 'inject', T0 + 2000],
    ],
  );
  for (const size of [1, 2, 3]) {
    const pages: string[][] = [];
    let after: string | undefined;
    for (;;) {
      const got = store.queries.vms(connected, size, after);
      pages.push(got.map((v) => v.vm));
      if (got.length < size) break;
      after = got[got.length - 1]?.vm;
    }
    assert.deepEqual(
      pages.flat(),
      all.map((v) => v.vm),
      `pages of ${size}`,
    );
    assert.ok(pages.every((p) => p.length <= size));
  }
});

test('each page of events before a cursor ends its index range at the cursor, not a scan of every newer row', (t) => {
  const store = scratchStore(t);
  const params = { since: 0, limit: 10, vm: 'vm-a', bt: T0, bi: 7 };
  // Each row's boot id is a lookup of its own.
  const boot = '; CORRELATED SCALAR SUBQUERY 3; SEARCH boots USING INTEGER PRIMARY KEY (rowid=?)';
  assert.deepEqual(plans(store, store.queries.eventStatements(), params), {
    first: `SEARCH event_rows USING INDEX events_time (time_ms>?)${boot}`,
    before: `SEARCH event_rows USING INDEX events_time (time_ms>? AND time_ms<?)${boot}`,
    byVmFirst: `SEARCH event_rows USING INDEX events_vm_time (vm=? AND time_ms>?)${boot}`,
    byVmBefore: `SEARCH event_rows USING INDEX events_vm_time (vm=? AND time_ms>? AND time_ms<?)${boot}`,
  });
});

test('paging back through events, of all VMs or one, gives each once though pages end inside a millisecond', (t) => {
  const store = scratchStore(t);
  const a = session('vm-a', 1n);
  const b = session('vm-b', 2n);
  // Five to a millisecond, two VMs interleaved: pages of 3 end mid-millisecond.
  const batch = [];
  for (let seq = 1; seq <= 40; seq++)
    batch.push(record({ session: seq % 2 ? a : b, seq, timeMs: T0 + Math.floor(seq / 5) }));
  store.append(batch);
  const walk = (vm?: string): number[] => {
    const seen: number[] = [];
    let before: { timeMs: number; id: number } | undefined;
    for (;;) {
      const page = store.queries.events({ limit: 3, ...(vm ? { vm } : {}), ...(before ? { before } : {}) });
      seen.unshift(...page.map((e) => e.seq));
      const oldest = page[0];
      if (page.length < 3 || !oldest) return seen;
      before = { timeMs: oldest.timeMs, id: oldest.id };
    }
  };
  const all = Array.from({ length: 40 }, (_, i) => i + 1);
  assert.deepEqual(walk(), all);
  assert.deepEqual(
    walk('vm-a'),
    all.filter((s) => s % 2),
  );
  assert.deepEqual(
    store.queries.events({ limit: 100, sinceMs: T0 + 7 }).map((e) => e.seq),
    all.filter((s) => s >= 35),
  );
});
