/**
 * The benchmark's C load generator (bench/c/client.c) counts only right answers: a server that
 * answers an event twice, answers a seq never sent, sends a reply of another length or leaves an
 * event unanswered makes it fail with a message, not score. Its HELLO carries its own pid, the
 * one the daemon sees as the connecting process's. Served here by a small server in this process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REPLY_LEN, REPLY_TYPE, writeFrames } from '../../bench/frames.js';
import { buildC } from '../../bench/servers.js';
import { BODY_SIZE, MSG } from '../../protocol/index.js';
import { runTool } from '../daemon/e2e/run-cli.js';
import { removeDir } from '../helpers/daemon.js';
import { requireTool } from '../helpers/tools.js';
import { within } from '../helpers/wait.js';

const SOURCE = fileURLToPath(new URL('../../bench/c/client.c', import.meta.url));

/** How the server answers the event it is sent as the `i`th: the replies' seqs and body length. */
type Answer = (seq: number, i: number) => { seqs: number[]; len?: number };

function frame(type: number, len: number, seq = 0): Buffer {
  const b = Buffer.alloc(8 + len);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  if (len >= 4) b.writeUInt32LE(seq, 8);
  return b;
}

interface Fake {
  socket: string;
  /** Per HELLO: its vmmPid, and the command name of the process of that pid when it came. */
  hellos: { pid: number; comm: string }[];
}

async function serve(t: TestContext, dir: string, answer: Answer): Promise<Fake> {
  const fake: Fake = { socket: join(dir, 'fake.sock'), hellos: [] };
  const conns = new Set<Socket>();
  let n = 0;
  const server: Server = createServer((s) => {
    conns.add(s);
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 8 && buf.length >= 8 + buf.readUInt32LE(0)) {
        const len = buf.readUInt32LE(0);
        const type = buf.readUInt16LE(4);
        const body = buf.subarray(8, 8 + len);
        buf = buf.subarray(8 + len);
        if (type === MSG.HELLO) {
          const pid = body.readUInt32LE(8);
          let comm = '';
          try {
            comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
          } catch {}
          fake.hellos.push({ pid, comm });
          s.write(frame(MSG.WELCOME, BODY_SIZE.WELCOME));
        } else if (type === MSG.EVENT_SEA) {
          const a = answer(body.readUInt32LE(0), n++);
          for (const seq of a.seqs) s.write(frame(MSG.VERDICT, a.len ?? BODY_SIZE.VERDICT, seq));
        }
      }
    });
  });
  t.after(async () => {
    for (const s of conns) s.destroy();
    await new Promise((r) => server.close(r));
  });
  await within('the fake server to listen', new Promise<void>((r) => server.listen(fake.socket, r)));
  return fake;
}

async function setup(t: TestContext): Promise<{ dir: string; client: string; frames: string } | null> {
  if (!requireTool(t, 'gcc', 'gcc')) return null;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-client-test-'));
  t.after(() => removeDir(dir));
  const client = join(dir, 'client');
  buildC(SOURCE, client);
  const frames = join(dir, 'frames');
  writeFrames(frames, 4, true);
  return { dir, client, frames };
}

const run = (client: string, socket: string, frames: string, mode: string, count: number) =>
  runTool(client, [
    socket,
    frames,
    mode,
    String(count),
    mode === 'latency' ? '1' : '4',
    String(REPLY_TYPE.daemon),
    String(REPLY_LEN.daemon),
  ]);

test('the C client counts every event answered once, and its HELLO carries its own pid', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const fake = await serve(t, s.dir, (seq) => ({ seqs: [seq] }));
  for (const mode of ['throughput', 'latency']) {
    const r = await run(s.client, fake.socket, s.frames, mode, 400);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { count: number }).count, 400);
  }
  assert.ok(fake.hellos.length > 0);
  for (const h of fake.hellos) assert.equal(h.comm, 'client', `HELLO's vmmPid ${h.pid} is the client's`);
});

// The one event left unanswered, in throughput mode (4 in flight): later events go on being answered
// until its slot comes round again (one event in flight would wait out the client's 10 s deadline).
const wrong: [string, Answer, RegExp, string?][] = [
  [
    'every other event answered twice',
    (seq, i) => ({ seqs: i % 2 ? [seq] : [seq, seq] }),
    /already answered/,
  ],
  ['a seq never sent', (seq, i) => ({ seqs: [i % 2 ? seq : 0xdeadbeef] }), /not sent or already answered/],
  ['a reply of another length', (seq) => ({ seqs: [seq], len: 4 }), /a reply of 4 bytes, not 88/],
  [
    'an event left unanswered',
    (seq, i) => ({ seqs: i === 0 ? [] : [seq] }),
    /still unanswered/,
    'throughput',
  ],
  [
    'the last event answered twice',
    (seq) => ({ seqs: seq === 400 ? [seq, seq] : [seq] }),
    /a reply after|already answered/,
  ],
];
for (const [what, answer, message, mode = 'latency'] of wrong)
  test(`the C client fails on ${what}`, async (t) => {
    const s = await setup(t);
    if (!s) return;
    const fake = await serve(t, s.dir, answer);
    const r = await run(s.client, fake.socket, s.frames, mode, 400);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, message);
  });
