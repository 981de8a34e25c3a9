/**
 * `seawall events --follow` against a running daemon, through the compiled CLI: the listing, then
 * each event as it is stored, once, in the order stored (ids rising), with `--vm` keeping to one
 * VM; across a restart of the daemon it says the daemon is gone, waits, and goes on from the same
 * event with the events the new daemon stores; a store made anew while it was not looking (a
 * follower stopped through the restart) is followed from its start, and said; a daemon that
 * stops with a request in hand is asked again (a control server of the test's own makes that
 * moment); and the command ends once whoever reads its output is gone, with no event to find it out.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { StoredEvent } from '../../../store/index.js';
import { seaEvent } from '../../../vmm/sample-events.js';
import { CLI, type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { killOwned, spawnOwned } from '../../helpers/processes.js';
import { RawClient } from '../../helpers/raw-client.js';
import { until } from '../../helpers/wait.js';
import { runTool } from './run-cli.js';

interface Follower {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
}

function startFollower(controlSocket: string, args: readonly string[]): Follower {
  const proc = spawnOwned(process.execPath, [
    CLI,
    'events',
    '--follow',
    '--control-socket',
    controlSocket,
    ...args,
  ]);
  const lines: string[] = [];
  let err = '';
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(l));
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  return { proc, lines, stderr: () => err };
}

async function events(client: RawClient, seqs: readonly number[]): Promise<void> {
  for (const seq of seqs) client.send(seaEvent(seq, { gpa: BigInt(seq) << 12n }));
  await client.waitFor('verdict', (v) => v.seq === seqs[seqs.length - 1]);
}

test('--follow prints each event once as it is stored, and follows the daemon across a restart', async (t) => {
  let d: RunningDaemon | null = null;
  const clients: RawClient[] = [];
  const followers: Follower[] = [];
  t.after(async () => {
    for (const f of followers) await killOwned(f.proc, 'a follower');
    for (const c of clients) c.destroy();
    await d?.kill();
    if (d) removeDir(d.dir);
  });
  d = await startDaemon({ metrics: false });
  const connect = async (vm: string) => {
    const c = await RawClient.open((d as RunningDaemon).socket);
    clients.push(c);
    await c.hello(vm);
    return c;
  };
  const alpha = await connect('alpha');
  await events(alpha, [1, 2]);

  const all = startFollower(d.controlSocket, ['--json']);
  const beta = startFollower(d.controlSocket, ['--vm', 'beta']);
  followers.push(all, beta);
  const parsed = () => all.lines.map((l) => JSON.parse(l) as StoredEvent);
  const following = (f: Follower, n: number, what: string) =>
    until(what, () => f.lines.length >= n, { state: () => `${f.lines.join('\n')}\n${f.stderr()}` });
  await following(all, 2, 'the listing of the two stored events');
  await following(beta, 1, "the --vm beta listing's header");

  await events(alpha, [3, 4]);
  const b = await connect('beta');
  await events(b, [1]);
  await following(all, 5, 'the three events stored after the listing');
  await following(beta, 2, "beta's event");
  assert.deepEqual(
    parsed().map((e) => [e.vm, e.seq]),
    [
      ['alpha', 1],
      ['alpha', 2],
      ['alpha', 3],
      ['alpha', 4],
      ['beta', 1],
    ],
    'one line per event, each once, oldest first',
  );
  const ids = parsed().map((e) => e.id);
  assert.ok(
    ids.every((id, i) => i === 0 || id > (ids[i - 1] as number)),
    `ids rise: ${ids}`,
  );
  assert.match(beta.lines[0] as string, /^TIME\s+VM\s+VCPU/);
  assert.match(beta.lines[1] as string, /\sbeta\s/);

  // The daemon restarts on the same store: the follower waits it out and goes on from event 5.
  await d.stop();
  await until('the follower to say the daemon is gone', () => /does not answer/.test(all.stderr()));
  for (const c of clients.splice(0)) c.destroy();
  d = await startDaemon({ dir: d.dir, metrics: false });
  const again = await connect('alpha');
  await events(again, [5]);
  await following(all, 6, 'the event the restarted daemon stored');
  const last = parsed()[5] as StoredEvent;
  assert.deepEqual([last.vm, last.seq], ['alpha', 5]);
  assert.ok(last.id > (ids[4] as number), 'ids go on across the restart');
  assert.match(all.stderr(), /the daemon answers again/);
  assert.equal(beta.lines.length, 2, '--vm beta printed nothing of alpha');
  assert.equal(all.proc.exitCode, null, 'still following');
});

test('a store made anew while the follower was stopped is followed from its start, and said', async (t) => {
  let d: RunningDaemon | null = null;
  const clients: RawClient[] = [];
  let follower: Follower | null = null;
  t.after(async () => {
    if (follower) await killOwned(follower.proc, 'the follower');
    for (const c of clients) c.destroy();
    await d?.kill();
    if (d) removeDir(d.dir);
  });
  d = await startDaemon({ metrics: false });
  const alpha = await RawClient.open(d.socket);
  clients.push(alpha);
  await alpha.hello('alpha');
  await events(alpha, [1, 2, 3]);
  const f = startFollower(d.controlSocket, ['--json']);
  follower = f;
  await until('the listing', () => f.lines.length >= 3, { state: () => f.lines.join('\n') + f.stderr() });
  // Stopped through the restart: it never sees the daemon gone. The new store then holds more
  // events than the old one's last id, so neither a failed request nor a lower last id gives it away.
  // Stopped with the follower's request possibly in hand: an answer that came after the stop had
  // closed its connection once held the daemon 30 s (test/control/server-deadlines.test.ts).
  f.proc.kill('SIGSTOP');
  await d.stop();
  for (const c of clients.splice(0)) c.destroy();
  const aside = join(d.dir, 'aside');
  mkdirSync(aside);
  for (const name of readdirSync(d.stateDir).filter((n) => n.startsWith('events.sqlite')))
    renameSync(join(d.stateDir, name), join(aside, name));
  d = await startDaemon({ dir: d.dir, metrics: false });
  const beta = await RawClient.open(d.socket);
  clients.push(beta);
  await beta.hello('beta');
  await events(beta, [1, 2, 3, 4, 5]);
  f.proc.kill('SIGCONT');
  await until('the new store, from its start', () => f.lines.length >= 8, {
    state: () => f.lines.join('\n') + f.stderr(),
  });
  const printed = f.lines.map((l) => JSON.parse(l) as StoredEvent);
  assert.deepEqual(
    printed.slice(3).map((e) => [e.id, e.vm, e.seq]),
    [1, 2, 3, 4, 5].map((n) => [n, 'beta', n]),
  );
  assert.match(f.stderr(), /store is another one now/);
});

test('--follow ends once the reader of its output is gone, though no event comes', async () => {
  const d = await startDaemon({ metrics: false });
  try {
    const r = await runTool('sh', [
      '-c',
      `"${process.execPath}" "${CLI}" events --follow --control-socket "${d.controlSocket}" | head -1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^TIME\s+VM/);
  } finally {
    await d.kill();
    removeDir(d.dir);
  }
});

test('a daemon that stops with a follow request in hand is asked again, not given up on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-follow-'));
  const path = join(dir, 'control.sock');
  let follows = 0;
  const answer = (sock: Socket, result: unknown) =>
    sock.end(`${JSON.stringify({ id: 1, ok: true, result })}\n`);
  // Answers as a daemon would, but closes the first request to follow on without a word.
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.once('data', (d) => {
      const req = JSON.parse(d.toString()) as { cmd: string; args: { afterId?: number } };
      if (req.cmd === 'events') return answer(sock, []);
      if (req.args.afterId === undefined)
        return answer(sock, { events: [], through: 0, more: false, storeCreatedMs: 1 });
      if (++follows === 1) return sock.end();
      const events = follows === 2 ? [{ id: 1, vm: 'alpha', seq: 1 }] : [];
      answer(sock, { events, through: 1, more: false, storeCreatedMs: 1 });
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const f = startFollower(path, ['--json']);
  t.after(async () => {
    await killOwned(f.proc, 'the follower');
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  await until('the event answered after the closed request', () => f.lines.length >= 1, {
    state: () => f.stderr(),
  });
  assert.deepEqual(JSON.parse(f.lines[0] as string), { id: 1, vm: 'alpha', seq: 1 });
  assert.match(f.stderr(), /the daemon does not answer .*closed without answering/);
  assert.equal(f.proc.exitCode, null, 'still following');
});
