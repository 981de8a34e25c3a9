/**
 * The C plugin (vmm/c) written from docs/protocol.md alone, compiled with gcc and run against the
 * real daemon, then against peers that never answer: the deadline fallback must answer instead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  DAEMON_ACCEPTS,
  encodeMessage,
  FrameParser,
  type Message,
  type SeaEventMsg,
} from '../../protocol/index.js';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { runFile as run } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';

const SRC = new URL('../../vmm/c/', import.meta.url).pathname;
const IMAGE = `000001${'0'.repeat(122)}`;
const dir = mkdtempSync(join(tmpdir(), 'seawall-c-'));
after(() => removeDir(dir));

let built: Promise<string> | null = null;
/** Compiles the plugin and the example once, warnings as errors; null when gcc is absent (skipped). */
async function example(t: Parameters<typeof requireTool>[0]): Promise<string | null> {
  const gcc = requireTool(t, 'gcc', 'gcc');
  if (!gcc) return null;
  built ??= (async () => {
    const out = join(dir, 'example');
    await run(gcc, [
      '-std=c11',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-pedantic',
      '-O2',
      '-o',
      out,
      join(SRC, 'seawall_plugin.c'),
      join(SRC, 'example.c'),
    ]);
    return out;
  })();
  return built;
}

/**
 * Compiles test/protocol/fixtures/<name>.c against the plugin, with `interpose` defines (e.g.
 * `send=fake_send`) applied to the plugin alone, warnings as errors; null when gcc is absent.
 */
async function fixtureBinary(
  t: Parameters<typeof requireTool>[0],
  name: string,
  interpose: string[] = [],
): Promise<string | null> {
  const gcc = requireTool(t, 'gcc', 'gcc');
  if (!gcc) return null;
  const bin = join(dir, name);
  const fixture = new URL(`./fixtures/${name}.c`, import.meta.url).pathname;
  const strict = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-O2', `-I${SRC}`];
  const plugin = join(dir, `${name}-plugin.o`);
  const defines = interpose.map((d) => `-D${d}`);
  await run(gcc, [...strict, ...defines, '-c', '-o', plugin, join(SRC, 'seawall_plugin.c')]);
  await run(gcc, [...strict, '-o', bin, fixture, plugin]);
  return bin;
}

interface Line {
  action: string;
  events: string;
  source: string;
}

async function runExample(bin: string, args: string[]): Promise<{ line: Line; stderr: string }> {
  const { stdout, stderr } = await run(bin, args, { timeout: 30_000 });
  const [action, events, source] = stdout.trim().split(' ');
  return { line: { action: action ?? '', events: events ?? '', source: source ?? '' }, stderr };
}

/** A peer on a private socket that records each connection's frames and answers as `answer` says. */
async function fakeDaemon(answer: (conn: number, m: Message, s: Socket) => void) {
  const path = join(mkdtempSync(join(dir, 'fake-')), 'plugin.sock');
  const conns: Message[][] = [];
  const server: Server = createServer((s) => {
    const n = conns.length;
    const got: Message[] = [];
    conns.push(got);
    const p = new FrameParser(
      (m) => {
        got.push(m);
        answer(n, m, s);
      },
      { accept: DAEMON_ACCEPTS },
    );
    s.on('data', (c: Buffer) => p.push(c));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, conns, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const WELCOME = encodeMessage({
  type: 'welcome',
  version: 1,
  minor: 1,
  maxInFlight: 16,
  sessionId: 9n,
  heartbeatMs: 5000,
  maxBody: 16384,
});

test('against the real daemon: the sea_to_user exit gets INJECT with ext_dabt_pending=1', async (t) => {
  const bin = await example(t);
  if (!bin) return;
  const d = await startDaemon({ metrics: false });
  try {
    const { line } = await runExample(bin, [d.socket]);
    assert.deepEqual(line, { action: 'INJECT', events: IMAGE, source: 'daemon' });
  } finally {
    await d.stop();
    removeDir(d.dir);
  }
});

test('the C plugin sends the HELLO and EVENT_SEA the spec describes', async (t) => {
  const bin = await example(t);
  if (!bin) return;
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'hello') s.write(WELCOME);
    if (m.type === 'sea')
      s.write(
        encodeMessage({
          type: 'verdict',
          seq: m.seq,
          action: 3,
          flags: 0,
          graceMs: 100,
          esr: 0n,
          vcpuEvents: new Uint8Array(64),
        }),
      );
    if (m.type === 'goodbye') s.end(encodeMessage({ type: 'goodbye', reason: 0 }));
  });
  try {
    const { line } = await runExample(bin, [fake.path]);
    assert.deepEqual(line, { action: 'KILL', events: '0'.repeat(128), source: 'daemon' });
    const [hello, sea, applied, goodbye] = fake.conns[0] ?? [];
    assert.equal(hello?.type, 'hello');
    assert.equal(hello.vmId, 'c-example');
    assert.deepEqual(hello.labels, { tenant: 'selftest' });
    assert.equal(hello.version, 1);
    assert.equal(hello.minor, 1, 'the C plugin asks for 1.1');
    assert.equal(hello.caps, 0x13);
    assert.equal(sea?.type, 'sea');
    assert.deepEqual(
      { ...sea, timeNs: 0n },
      {
        type: 'sea',
        seq: 1,
        vcpu: 0,
        timeNs: 0n,
        replay: false,
        fallbackAction: 0,
        kvmFlags: 1n,
        esr: 0x92000010n,
        gva: 0x81234badn,
        gpa: 0x4_5678_b000n,
      },
    );
    assert.ok(sea.timeNs > 1_700_000_000_000_000_000n, 'time_ns is CLOCK_REALTIME in ns');
    assert.deepEqual(applied, { type: 'applied', seq: 1, result: 0 });
    assert.deepEqual(goodbye, { type: 'goodbye', reason: 2 });
  } finally {
    await fake.close();
  }
});

test('no daemon at all: the fallback answers at once', async (t) => {
  const bin = await example(t);
  if (!bin) return;
  const { line, stderr } = await runExample(bin, [join(dir, 'nobody-here.sock'), '--deadline-ms', '200']);
  assert.deepEqual(line, { action: 'INJECT', events: IMAGE, source: 'fallback' });
  assert.match(stderr, /No such file or directory/);
});

test('a listener that never answers: the handshake times out and the fallback answers', async (t) => {
  const bin = await example(t);
  if (!bin) return;
  const fake = await fakeDaemon(() => {});
  try {
    const { line, stderr } = await runExample(bin, [fake.path, '--deadline-ms', '200']);
    assert.deepEqual(line, { action: 'INJECT', events: IMAGE, source: 'fallback' });
    assert.match(stderr, /timed out/);
    assert.equal(fake.conns[0]?.[0]?.type, 'hello');
  } finally {
    await fake.close();
  }
});

test('a daemon frozen after WELCOME: the deadline fallback answers, and the event is replayed on reconnect', async (t) => {
  const bin = await example(t);
  if (!bin) return;
  // Each connection gets WELCOME and nothing more: the first one's event is never answered.
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'hello') s.write(WELCOME);
    if (m.type === 'goodbye') s.end(encodeMessage({ type: 'goodbye', reason: 0 }));
  });
  try {
    const { line, stderr } = await runExample(bin, [fake.path, '--deadline-ms', '200', '--reconnect']);
    assert.deepEqual(line, { action: 'INJECT', events: IMAGE, source: 'fallback' });
    assert.match(stderr, /^replayed 1$/m);
    const first = fake.conns[0]?.find((m): m is SeaEventMsg => m.type === 'sea');
    const replay = fake.conns[1]?.find((m): m is SeaEventMsg => m.type === 'sea');
    assert.ok(first && replay, 'an event on each connection');
    assert.equal(first.replay, false);
    assert.deepEqual(replay, { ...first, replay: true, fallbackAction: 1 });
    assert.deepEqual(
      fake.conns[1]?.map((m) => m.type),
      ['hello', 'sea', 'heartbeat', 'goodbye'],
      'replays come right after WELCOME, before anything else, then the HEARTBEAT that asks for their acknowledgement',
    );
  } finally {
    await fake.close();
  }
});

/**
 * Starts writing HEARTBEATs to `s` as fast as it reads them, until it closes or `ms` pass. Resolves
 * with who ended the flood: 'peer' (the plugin closed its socket) or 'timer'.
 */
function floodHeartbeats(s: Socket, ms: number): Promise<'peer' | 'timer'> {
  const blob = Buffer.concat(
    Array.from({ length: 512 }, () => encodeMessage({ type: 'heartbeat', nonce: 7n })),
  );
  return new Promise((resolve) => {
    let ended = false;
    const end = (by: 'peer' | 'timer') => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      if (by === 'timer') s.destroy();
      resolve(by);
    };
    const timer = setTimeout(() => end('timer'), ms);
    s.on('close', () => end('peer'));
    const pump = () => {
      while (!ended && s.write(blob)) {}
      if (!ended) s.once('drain', pump);
    };
    pump();
  });
}

test('a daemon that floods HEARTBEATs and never answers: the fallback still comes at the deadline', async (t) => {
  const bin = await fixtureBinary(t, 'heartbeat-flood');
  if (!bin) return;
  let flood: Promise<'peer' | 'timer'> | undefined;
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'hello') s.write(WELCOME);
    if (m.type === 'sea') flood = floodHeartbeats(s, 10_000);
  });
  try {
    const { stdout } = await run(bin, [fake.path, '500'], { timeout: 30_000 });
    assert.equal(await flood, 'peer', 'the call returned while the flood went on');
    assert.equal(stdout.trim(), 'connect=0 source=fallback connected=1');
  } finally {
    await fake.close();
  }
});

test('a frame torn by a write that timed out part-way: the connection is dropped, not written after', async (t) => {
  const bin = await fixtureBinary(t, 'torn-write', ['send=fake_send', 'poll=fake_poll']);
  if (!bin) return;
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'hello') s.write(WELCOME);
    if (m.type === 'sea')
      s.write(
        encodeMessage({
          type: 'verdict',
          seq: m.seq,
          action: 0,
          flags: 0,
          graceMs: 0,
          esr: 0n,
          vcpuEvents: new Uint8Array(64),
        }),
      );
  });
  try {
    const { stdout } = await run(bin, [fake.path], { timeout: 30_000 });
    // Still connected, the second frame would follow the first's 20 bytes: a stream the daemon
    // reads as one frame whose body swallows the next one's header.
    assert.equal(stdout.trim(), '0 fallback');
    assert.deepEqual(
      fake.conns[0]?.map((m) => m.type),
      ['hello'],
      'nothing after the HELLO parsed on that connection',
    );
  } finally {
    await fake.close();
  }
});

test('an event whose write timed out drops the connection, and the reconnect replays it', async (t) => {
  const bin = await fixtureBinary(t, 'write-timeout');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'dropped=1 fallbacks=all:1', // the first write that timed out dropped the connection
    'fresh some=1 last=0', // the daemon got the events written before its buffer filled, not the last
    'after-reconnect last=2 missing=0', // the last one came as a replay: no event was lost
  ]);
});

test('seawall_connect_fd owns the fd: every error closes it, a WELCOME keeps it', async (t) => {
  const bin = await fixtureBinary(t, 'connect-fd', ['fcntl=fake_fcntl']);
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'bad-hello -22 closed', // -EINVAL: the HELLO is refused before anything is sent
    'fcntl -1 closed', // -EPERM from F_SETFL
    'refused -111 closed', // -ECONNREFUSED: REJECT before WELCOME
    'welcome 0 open held',
  ]);
});

test('the replay ring holds only events still to replay: a late verdict frees its slot and is never counted as a drop', async (t) => {
  const bin = await fixtureBinary(t, 'kept-ring');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  const replayed = Array.from({ length: 65 }, (_, i) => 102 + i).filter((s) => s !== 110);
  assert.deepEqual(stdout.trim().split('\n'), [
    // 100 exits that fell back and were then decided late: no event was lost.
    'late kept=0 dropped=0 oldest=0 late=100',
    // 65 with no verdict in a ring of 64: seq 101, the oldest, is the one drop.
    'full kept=64 dropped=1 oldest=102 late=100',
    'forgot kept=63 dropped=1 oldest=102 late=101',
    'refill kept=64 dropped=1 oldest=102 late=101',
    `replayed ${replayed.join(',')}`,
    // The echo acknowledges the 63 replays left after seq 120's late verdict, not the new exit.
    'acked kept=1 dropped=1 oldest=167 late=102',
    'fresh kept',
  ]);
});

test('seawall_reconnect_due: backoff doubling to its bound after each failure, reset by WELCOME, armed by a lost connection', async (t) => {
  const bin = await fixtureBinary(t, 'reconnect');
  if (!bin) return;
  const { stdout } = await run(bin, [join(dir, 'no-daemon.sock')], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'fresh due=1', // never connected: due at once
    'failures 50 100 200 400 800 1600 2000 2000', // the wait each failed connect scheduled (ms)
    'down-exit source=1 unchanged=1', // the fallback answers; the reconnect is not pushed away
    'due after 1',
    'welcome r=0 due=0 backoff=50 replayed=1',
    'lost source=1 connected=0 wait=50',
  ]);
});
