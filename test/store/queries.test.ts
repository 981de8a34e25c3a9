/** The store's read side: poisoned pages are paged by seeking the primary key, however deep. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scratchStore } from './records.js';

const gpa = (i: number): string => `0x${(i * 4096).toString(16).padStart(16, '0')}`;

test('each page of poisoned pages after the first is a seek on the primary key, not a scan', (t) => {
  const store = scratchStore(t);
  const plans = Object.entries(store.queries.poisonStatements()).map(([name, stmt]) => {
    const params = { vm: 'vm-a', av: 'vm-a', ag: gpa(1), limit: 10 };
    const rows = store.db.prepare(`EXPLAIN QUERY PLAN ${stmt.source}`).all(params) as { detail: string }[];
    return [name, rows.map((r) => r.detail).join('; ')];
  });
  assert.deepEqual(Object.fromEntries(plans), {
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
