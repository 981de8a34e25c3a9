/**
 * The bound on an answer's bytes (store/answer-bytes.ts): `events` and `follow` stop once their
 * rows' JSON reaches it and say where they stopped, so that paging back and following forward
 * give every row exactly once; a row larger than the bound is still given, alone. Rows here carry
 * the largest labels a plugin may send (32 of 63 + 255 bytes, control bytes that escape to six
 * characters each), as one VM's plugin can.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANSWER_MAX_BYTES } from '../../store/answer-bytes.js';
import { type EventStore, jsonText, type StoredEvent, StoreReader } from '../../store/index.js';
import { record, scratchStore, session } from './records.js';

const T0 = Date.UTC(2026, 11, 5, 14, 0, 0);

function bigLabels(): Record<string, string> {
  const labels: Record<string, string> = {};
  for (let i = 0; i < 32; i++) labels[`k${String(i).padStart(62, '0')}`] = '\u0001'.repeat(255);
  return labels;
}

/** `n` events of a VM with the largest labels, `perMs` of them to each millisecond. */
function seed(store: EventStore, n: number, perMs = 1): void {
  const s = session('vm-big', 1n, bigLabels());
  for (let from = 1; from <= n; from += 500) {
    const batch = [];
    for (let seq = from; seq < Math.min(from + 500, n + 1); seq++)
      batch.push(record({ session: s, seq, timeMs: T0 + Math.floor(seq / perMs) }));
    store.append(batch);
  }
}

const bytesOf = (rows: readonly StoredEvent[]): number => Buffer.byteLength(jsonText(rows));

test('events pages back by the bytes of its rows, every row once; follow goes on from where it stopped', (t) => {
  const store = scratchStore(t);
  // Three to a millisecond: pages end inside a millisecond too, and `before` breaks the tie by id.
  seed(store, 60, 3);
  const q = store.queries;
  const row = bytesOf(q.events({ limit: 1 }));
  assert.ok(row > 32 * 255 * 6, `a row repeats its VM's escaped labels (${row} bytes)`);
  const budget = 7 * row;
  const seen: number[] = [];
  let before: { timeMs: number; id: number } | undefined;
  for (;;) {
    const page = q.events({ limit: 10_000, ...(before ? { before } : {}) }, budget);
    if (page.length === 0) break;
    assert.ok(page.length < 10 && bytesOf(page) <= budget, `${page.length} rows, ${bytesOf(page)} bytes`);
    seen.unshift(...page.map((e) => e.seq));
    const oldest = page[0] as StoredEvent;
    before = { timeMs: oldest.timeMs, id: oldest.id };
  }
  assert.deepEqual(
    seen,
    Array.from({ length: 60 }, (_, i) => i + 1),
    'every row once, oldest first',
  );

  const followed: number[] = [];
  let through = 0;
  for (let answers = 0; ; answers++) {
    assert.ok(answers < 60, 'following ends');
    const a = q.follow({ afterId: through }, budget);
    assert.ok(bytesOf(a.events) <= budget);
    followed.push(...a.events.map((e) => e.seq));
    through = a.through;
    if (!a.more) break;
  }
  assert.deepEqual(followed, seen, 'following gives every row once, in the order stored');

  // A bound below one row: each answer still gives one, so paging and following go on.
  assert.deepEqual(
    q.events({ limit: 5 }, 1).map((e) => e.seq),
    [60],
  );
  const one = q.follow({ afterId: 0 }, 1);
  assert.deepEqual([one.events.map((e) => e.seq), one.more], [[1], true]);
  assert.equal(one.through, one.events[0]?.id);
});

test("the reader thread's answers stay within the bound at its default", async (t) => {
  const store = scratchStore(t);
  const row = (() => {
    seed(store, 1);
    return bytesOf(store.queries.events({ limit: 1 }));
  })();
  // Enough rows that ten thousand of them would pass the bound.
  const n = Math.ceil((1.5 * ANSWER_MAX_BYTES) / row);
  seed(store, n);
  const reader = new StoreReader(store);
  t.after(() => reader.close());
  const list = (await reader.eventsEncoded({ limit: 10_000 })).bytes;
  const events = JSON.parse(Buffer.from(list).toString('utf8')) as StoredEvent[];
  assert.ok(list.length <= ANSWER_MAX_BYTES, `events: ${list.length} bytes`);
  assert.ok(events.length > 0 && events.length < n, `events: ${events.length} of ${n + 1} rows`);
  const follow = (await reader.followEncoded({ afterId: 0 })).bytes;
  const answer = JSON.parse(Buffer.from(follow).toString('utf8')) as {
    events: StoredEvent[];
    through: number;
    more: boolean;
  };
  assert.ok(follow.length <= ANSWER_MAX_BYTES + 1000, `follow: ${follow.length} bytes`);
  assert.ok(answer.more && answer.through === answer.events[answer.events.length - 1]?.id);
});
