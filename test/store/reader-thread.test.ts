/**
 * The reader thread: each answer is read from one snapshot of the store, whatever commits meanwhile,
 * and an encoded read's answer leaves it as JSON bytes.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { jsonText, StoreReader } from '../../store/index.js';
import type { ReaderData, ReaderReply, ReaderRequest } from '../../store/reader-thread.js';
import { startThread } from '../../store/start-thread.js';
import { killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { record, scratchStore, session } from './records.js';

test('status totals agree with themselves while another connection commits', async (t) => {
  const store = scratchStore(t);
  const s = session('vm-a');
  // Enough rows that counting them takes a while: a commit lands between two statements.
  for (let b = 0; b < 3; b++)
    store.append(
      Array.from({ length: 2000 }, (_, i) =>
        record({ session: s, seq: b * 2000 + i + 1, timeMs: 1_700_000_000_000 + i }),
      ),
    );
  const reader = new StoreReader(store);
  t.after(() => reader.close());
  const child = spawnOwned(
    process.execPath,
    ['--import', 'tsx', new URL('./children/commit-batches.ts', import.meta.url).pathname, store.path],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  t.after(() => killOwned(child, 'the writer'));
  const said: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => said.push(l));
  await until('the writer to open the store', () => said.includes('ready'));

  // One batch asked for beside each read: it commits while the read's statements run. Paced, so
  // that the table stays small and a busy machine only makes the test slower.
  const disagreeing: string[] = [];
  const seen = new Set<number>();
  // Reads of kept figures are quick (store/event-totals.ts): they go on, past 30, until commits
  // were seen to land between them, within a deadline.
  const deadline = Date.now() + 60_000;
  for (let i = 0; i < 30 || (seen.size < 3 && Date.now() < deadline); i++) {
    child.stdin?.write('batch\n');
    const totals = await reader.totals();
    seen.add(totals.events);
    // Every event is decided (none a replay): the counts by action add up to the events.
    const decided = Object.values(totals.byAction).reduce((a, b) => a + b, 0);
    if (decided !== totals.events - totals.replays)
      disagreeing.push(`${totals.events} events, by action ${JSON.stringify(totals.byAction)}`);
  }
  assert.ok(seen.size > 1, 'the writer committed while the totals were read');
  assert.deepEqual(disagreeing, []);
});

test("an encoded read's reply carries the answer's JSON as bytes, not its rows to be encoded by the caller", async (t) => {
  const store = scratchStore(t);
  const s = session('vm-a', 1n, { tenant: 't"1\u001b' });
  store.append([1, 2, 3].map((seq) => record({ session: s, seq, timeMs: 1_700_000_000_000 + seq })));
  const data: ReaderData = { kind: 'seawall-reader', path: store.path };
  const thread = startThread(new URL('../../store/reader-thread.ts', import.meta.url), { workerData: data });
  t.after(() => thread.terminate());
  const replies: ReaderReply[] = [];
  const both = within(
    'both replies',
    new Promise<void>((resolve) =>
      thread.on('message', (m: ReaderReply) => {
        if (replies.push(m) === 2) resolve();
      }),
    ),
  );
  for (const [id, method, args] of [
    [1, 'events', [{ limit: 10 }]],
    [2, 'follow', [{ afterId: 0 }]],
  ] as const)
    thread.postMessage({ id, method, args: [...args], encode: true } satisfies ReaderRequest);
  await both;
  const byId = new Map(replies.map((r) => [r.id, r]));
  const want = new Map([
    [1, jsonText(store.queries.events({ limit: 10 }))],
    [2, jsonText(store.queries.follow({ afterId: 0 }))],
  ]);
  for (const [id, text] of want) {
    const r = byId.get(id);
    assert.equal(r?.error, undefined);
    assert.equal(r?.result, undefined, 'no rows in the reply');
    assert.ok(r?.json instanceof Uint8Array, 'the answer as bytes');
    assert.equal(new TextDecoder().decode(r.json), text);
  }
});
