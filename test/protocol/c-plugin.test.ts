/**
 * The C plugin (vmm/c) written from docs/protocol.md alone, compiled with gcc and run against the
 * real daemon, then against peers that never answer: the deadline fallback must answer instead.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeMessage, type SeaEventMsg } from '../../protocol/index.js';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { runFile as run } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { plainVerdict } from '../helpers/verdicts.js';
import { C_SRC, cBuildDir, fakeDaemon, fixtureBinary, WELCOME, welcomeFor } from './c-fixtures.js';

const IMAGE = `000001${'0'.repeat(122)}`;
const dir = cBuildDir();

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
      join(C_SRC, 'seawall_plugin.c'),
      join(C_SRC, 'example.c'),
    ]);
    return out;
  })();
  return built;
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
    if (m.type === 'sea') s.write(encodeMessage(plainVerdict(m.seq)));
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

test('seawall_reconnect_due: backoff doubling to its bound after each failure and each session lost right after WELCOME, reset by the replay echo, a verdict or a session up to the bound, armed by a lost connection', async (t) => {
  const bin = await fixtureBinary(t, 'reconnect');
  if (!bin) return;
  const { stdout } = await run(bin, [join(dir, 'no-daemon.sock')], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'fresh due=1', // never connected: due at once
    'failures 50 100 200 400 800 1600 2000 2000', // the wait each failed connect scheduled (ms)
    'down-exit source=1 unchanged=1', // the fallback answers; the reconnect is not pushed away
    'due after 1',
    'welcome r=0 due=0 backoff=2000 replayed=1', // the session has not yet proved useful
    'echo polled=1 backoff=50 kept=0', // the echo of its replays has: the backoff starts over
    'lost source=1 connected=0 wait=50',
    'echoed polled=1 kept=0 wait=50', // the exit kept at that loss, replayed and forgotten
    // Sessions ended right after WELCOME prove nothing: the waits double as after failed connects.
    'welcome-only 100 200 400 800 1600 2000 2000',
    'verdict source=0 wait=50', // a verdict applied proves the session
    'bound before=100 wait=50', // and so does one up as long as the bound
  ]);
});

test('an event the daemon would refuse is answered by the fallback, never sent and never kept', async (t) => {
  const bin = await fixtureBinary(t, 'invalid-event');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'hello sent=hello/1.1',
    'vcpu-2 r=1 INJECT fallback sent=- invalid=1 kept=0', // vcpu_count is 2
    'ao-with-vcpu r=1 RESUME fallback sent=- invalid=2 kept=0', // 1.1: an AO names no vCPU
    'vcpu-1 r=0 RESUME daemon sent=sea3 invalid=2 kept=0',
    'down-vcpu-7 r=1 invalid=3 kept=0', // the HELLO's vcpu_count holds while not connected
    'down-kept invalid=3 kept=3', // the 1.1 checks wait for the session that replays them
    'replay sent=hello/1.1 sea7r hb invalid=5 kept=1', // MMIO len 3 and an AR without a vCPU dropped
    // caps 3 has no NISV_TO_USER: in 1.1 an NISV is neither sent live nor replayed.
    'nisv-undeclared r=1 INJECT fallback sent=- invalid=6 kept=1',
    'down-nisv invalid=6 kept=2',
    'nisv-replay sent=hello/1.1 sea7r hb invalid=7 kept=1',
    'down-sea invalid=7 kept=2',
    'sea-replay sent=hello/1.1 invalid=9 kept=0', // caps 2 has no SEA_TO_USER: both kept SEAs dropped
    'sea-undeclared r=1 INJECT fallback sent=- invalid=10 kept=0', // and a live one is not sent
    'v10 sent=hello/1.0',
    'v10-nisv r=0 RESUME daemon sent=nisv12 invalid=10 kept=0', // 1.0 does not check capabilities
    'v10-sea r=0 RESUME daemon sent=sea13 invalid=10 kept=0',
  ]);
});

test('replay sessions ended by an ERROR drain the kept events one per session; a plain drop keeps them; the backoff doubles until the echo', async (t) => {
  const bin = await fixtureBinary(t, 'replay-refused');
  if (!bin) return;
  const { stdout } = await run(bin, [], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    // r: -2 the ERROR was read, -1 the write failed with the ERROR behind it.
    'error-1 sent=hello/1.1 sea1r sea2r sea3r hb r=-2 kept=2 refused=1 backoff=100',
    'error-2 sent=hello/1.1 sea2r sea3r hb r=-1 kept=1 refused=2 backoff=200',
    'error-3 sent=hello/1.1 sea3r hb r=-2 kept=0 refused=3 backoff=400',
    'empty sent=hello/1.1 r=0 kept=0 refused=3 backoff=400', // nothing to replay: WELCOME alone proves nothing
    'lost sent=- r=1 kept=0 refused=3 backoff=800',
    'drop-1 sent=hello/1.1 sea4r sea5r hb r=1 kept=2 refused=3 backoff=1600', // no ERROR: nothing dropped
    'drop-2 sent=hello/1.1 sea4r sea5r hb r=1 kept=2 refused=3 backoff=2000',
    'echo sent=hello/1.1 sea4r sea5r hb r=1 kept=0 refused=3 backoff=50',
  ]);
});

test('the lower minor a refusal brings is asked for in the retry only: the next connect asks for 1.1 again', async (t) => {
  const bin = await fixtureBinary(t, 'minor-retry');
  if (!bin) return;
  const minors: number[] = [];
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'goodbye') s.end(encodeMessage({ type: 'goodbye', reason: 0 }));
    if (m.type !== 'hello') return;
    const minor = minors.push(m.minor ?? 0) === 1 ? null : (m.minor ?? 0);
    if (minor === null) s.end(encodeMessage({ type: 'error', code: 6, message: 'HELLO +2 is reserved' }));
    else s.write(welcomeFor(minor));
  });
  try {
    const { stdout } = await run(bin, [fake.path], { timeout: 30_000 });
    assert.deepEqual(minors, [1, 0, 1], 'the HELLOs: refused 1.1, the retry in 1.0, then 1.1 again');
    assert.deepEqual(stdout.trim().split('\n'), [
      'path-first r=0 session=1.0',
      'path-next r=0 session=1.1',
      'fd-refused r=-111 sent=hello/1.1 session=1.-1',
      'fd-retry r=0 sent=hello/1.0 session=1.0',
      'fd-next r=0 sent=hello/1.1 session=1.1',
    ]);
  } finally {
    await fake.close();
  }
});

test('HEARTBEATs before WELCOME are skipped: the connect succeeds and the exit gets the daemon verdict', async (t) => {
  const bin = await fixtureBinary(t, 'heartbeat-flood');
  if (!bin) return;
  const fake = await fakeDaemon((_n, m, s) => {
    if (m.type === 'hello')
      s.write(
        Buffer.concat([
          encodeMessage({ type: 'heartbeat', nonce: 1n }),
          encodeMessage({ type: 'heartbeat', nonce: 2n }),
          WELCOME,
        ]),
      );
    if (m.type === 'sea') s.write(encodeMessage(plainVerdict(m.seq)));
  });
  t.after(() => fake.close());
  // A patient deadline: only the handshake is under test, not the clock.
  const { stdout } = await run(bin, [fake.path, '20000'], { timeout: 30_000 });
  assert.equal(stdout.trim(), 'connect=0 source=daemon connected=1');
  assert.deepEqual(
    fake.conns.map((c) => c.map((m) => m.type)),
    [['hello', 'sea']],
    'one connection: the HEARTBEATs did not end it',
  );
});

test('the plugin and attach sockets, and any fd an attach reply carries, are close-on-exec from the moment they exist', async (t) => {
  const bin = await fixtureBinary(t, 'cloexec', ['socket=fake_socket', 'recvmsg=fake_recvmsg']);
  if (!bin) return;
  const work = mkdtempSync(join(dir, 'cloexec-'));
  const { stdout } = await run(bin, [work], { timeout: 30_000 });
  // Flags read right as socket() and recvmsg() return: a fork and exec on another thread after
  // that finds them close-on-exec (not just once a later fcntl ran).
  assert.deepEqual(stdout.trim().split('\n'), [
    'connect r=0 sockets=1 cloexec=1 nonblock=1',
    'attach r=0 sockets=2 cloexec=2 nonblock=2',
    'reply fds=1 cloexec=1 closed=1',
    'daemon exit=0',
  ]);
});
