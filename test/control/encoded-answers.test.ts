/**
 * The long answers of the control socket (`events`, `follow`, `vms`, `poison`, `why`) are made and
 * encoded on the reader thread and written as the bytes it made: the event loop, which also
 * answers every vCPU's exits, neither clones their rows nor stringifies them. An 8 MiB answer
 * encoded there held it for 46–81 ms (docs/performance.md, 2026-12-06): these tests break if
 * an answer's encoding comes back to the event loop.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { type ControlContext, ControlServer, serviceControlContext } from '../../control/index.js';
import { EncodedJson, EventStore, jsonText, StoreReader } from '../../store/index.js';
import { within } from '../helpers/wait.js';
import { record, scratchStorePath, session } from '../store/records.js';

const T0 = 1_700_000_000_000;

test('with a reader, the long reads come from its thread as bytes, and none reads on the event loop', async (t) => {
  const store = new EventStore({ path: scratchStorePath() });
  const reader = new StoreReader(store);
  t.after(() => {
    reader.close();
    store.close();
  });
  const a = session('vm-a', 1n, { tenant: 't"1\u001b' });
  store.append(
    [1, 2, 3].map((seq) => record({ session: a, seq, timeMs: T0 + seq, gpa: BigInt(seq) << 12n })),
  );
  const direct = store.queries;
  const expected = {
    events: jsonText(direct.events({ limit: 10 })),
    follow: jsonText(direct.follow({ afterId: 0 })),
    poison: jsonText(direct.poisonedPages()),
    vms: jsonText(direct.vms(['vm-a'])),
  };
  const ctx = serviceControlContext({
    version: '0.0.0-test',
    startedAtMs: () => T0,
    sessions: () => [a],
    pipeline: { decided: 0, replays: 0 },
    policy: {
      current: { version: 'v1' },
      currentText: null,
      reloads: 0,
      failedReloads: 0,
      lastReloadAtMs: 0,
    },
    store,
    reader,
    reload: () => Promise.reject(new Error('not in this test')),
  });
  // Every read through the store's own connection (the event loop's) comes here first.
  store.beforeRead = () => {
    throw new Error("a read on the event loop's connection");
  };
  const answers = {
    events: await ctx.events({ limit: 10 }),
    follow: await ctx.follow({ afterId: 0 }),
    poison: await ctx.poison({}),
    vms: await ctx.vms({}),
    why: await ctx.why({ vm: 'vm-a' }),
  };
  const text = (v: unknown) => {
    assert.ok(v instanceof EncodedJson, `an answer as bytes, not as ${typeof v}`);
    return new TextDecoder().decode(v.bytes);
  };
  for (const [cmd, want] of Object.entries(expected))
    assert.equal(text(answers[cmd as keyof typeof answers]), want, `${cmd}: the store's answer, as its JSON`);
  assert.equal((JSON.parse(text(answers.why)) as { entries: unknown[] }).entries.length, 3);
});

test("the server writes an answer's bytes as they are, within its reply, never parsed or encoded again", async (t) => {
  // JSON no stringify makes (spaces, an escape kept as written, a key repeated): a server that
  // parsed and encoded the answer again would write other bytes.
  const made = '[ {"vm" : "vm-\\u0061", "n":1,"n":2} ,\t{} ]';
  const answer = () => new EncodedJson(new TextEncoder().encode(made));
  const refuse = () => Promise.reject(new Error('not in this test'));
  const ctx: ControlContext = {
    status: refuse,
    vms: answer,
    events: async () => answer(),
    follow: answer,
    poison: answer,
    why: answer,
    reload: refuse,
  };
  const path = join(dirname(scratchStorePath()), 'control.sock');
  const server = new ControlServer(ctx);
  await server.listen({ path });
  t.after(() => server.close());
  const sock = connect(path);
  t.after(() => sock.destroy());
  const chunks: Buffer[] = [];
  const replies = within(
    'three replies',
    new Promise<string>((resolve, reject) => {
      sock.on('data', (b: Buffer) => {
        chunks.push(b);
        const all = Buffer.concat(chunks).toString('utf8');
        if (all.split('\n').length > 3) resolve(all);
      });
      sock.once('error', reject);
    }),
  );
  sock.write(
    '{"id":7,"cmd":"events","args":{"limit":5}}\n{"id":"q","cmd":"follow"}\n{"cmd":"why","args":{"vm":"x"}}\n',
  );
  assert.deepEqual((await replies).split('\n'), [
    `{"id":7,"ok":true,"result":${made}}`,
    `{"id":"q","ok":true,"result":${made}}`,
    `{"id":null,"ok":true,"result":${made}}`,
    '',
  ]);
});
