/**
 * The reference client's reconnect rules (docs/protocol.md §9 and §10), against a fake daemon on a
 * real Unix socket that refuses what the test tells it to, and against the real daemon:
 *
 * - an exit every daemon would refuse (a vCPU past vcpu_count, …) is answered by the fallback,
 *   counted, and never sent nor kept;
 * - a session the daemon ends with an ERROR before its replay echo drops the oldest replay it
 *   carried, so kept events the daemon refuses drain one per session, while the backoff keeps
 *   doubling until a session proves useful (its replays echoed, or nothing to replay);
 * - a connection that merely drops before the echo drops nothing;
 * - a version lowered for an old daemon lasts one session: the next connect asks for 1.1 again.
 *
 * The backoff is read from the delays the client announces ('reconnecting'), compared by value
 * and order: nothing here waits for time to pass or measures it.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  BUS_MCEERR_AO,
  CAP,
  DAEMON_ACCEPTS,
  type EventMsg,
  encodeMessage,
  FrameParser,
  GOODBYE_REASON,
  type HelloMsg,
  type Message,
  PROTOCOL_VERSION,
  WIRE_ERROR,
} from '../../protocol/index.js';
import type { StoredEvent } from '../../store/index.js';
import { PluginClient, type PluginClientOptions } from '../../vmm/plugin-client.js';
import type { ExitReport } from '../../vmm/plugin-types.js';
import { seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { cliJson } from '../daemon/e2e/run-cli.js';
import { PATIENT_DEADLINE_MS, removeDir, startDaemon } from '../helpers/daemon.js';
import { plainVerdict } from '../helpers/verdicts.js';
import { nextEvent, within } from '../helpers/wait.js';

/** What the fake answers a HELLO with: WELCOME (for the version asked), or a refusal that ends it. */
type HelloAnswer = 'welcome' | Message;

/** One connection as the fake saw it. */
interface FakeConn {
  socket: Socket;
  hello: HelloMsg | null;
  /** Its HELLO got a WELCOME. */
  welcomed: boolean;
  /** HEARTBEATs received. */
  heartbeats: number;
  /** Replays received, in order (the refused one included). */
  replays: EventMsg[];
  /** Live events received. */
  live: EventMsg[];
  /** Ended by the fake with an ERROR. */
  refused: boolean;
}

/**
 * A daemon that records what it receives and does what the test scripts: answers HELLO, answers
 * each live event with a VERDICT (unless told not to), stores replays once each (same seq and
 * time_ns: a duplicate, as the real store does), refuses the replays `refuseReplay` picks with
 * ERROR BAD_FIELD — stopping there, as the real daemon does — and echoes each HEARTBEAT, drops the
 * connection at it or ignores it, as `echo` says. Emits 'replay' (conn, event) for each replay.
 */
class FakeDaemon extends EventEmitter {
  readonly dir = mkdtempSync(join(tmpdir(), 'seawall-fake-'));
  readonly path = join(this.dir, 'plugin.sock');
  readonly conns: FakeConn[] = [];
  /** Replays stored, once each, in the order stored. */
  readonly stored: EventMsg[] = [];
  duplicates = 0;
  answerHello: (hello: HelloMsg) => HelloAnswer = () => 'welcome';
  refuseReplay: (m: EventMsg) => boolean = () => false;
  /** What to do at a HEARTBEAT (the connection's n-th, from 1): echo it, drop, or ignore it. */
  echo: (conn: FakeConn, n: number) => 'echo' | 'drop' | 'ignore' = () => 'echo';
  answerLive = true;
  /** Whether to end a connection with GOODBYE SHUTDOWN right after its WELCOME. */
  endAfterWelcome: (conn: FakeConn) => boolean = () => false;
  readonly #server: Server;

  constructor() {
    super();
    this.#server = createServer((socket) => {
      const conn: FakeConn = {
        socket,
        hello: null,
        welcomed: false,
        heartbeats: 0,
        replays: [],
        live: [],
        refused: false,
      };
      this.conns.push(conn);
      const parser = new FrameParser((m) => this.#receive(conn, m), { accept: DAEMON_ACCEPTS });
      socket.on('data', (chunk: Buffer) => {
        if (!conn.refused) parser.push(chunk);
      });
      socket.on('error', () => {});
    });
  }

  listen(): Promise<void> {
    return within(
      'the fake daemon to listen',
      new Promise((resolve) => this.#server.listen(this.path, () => resolve())),
    );
  }

  get hellos(): HelloMsg[] {
    return this.conns.flatMap((c) => (c.hello ? [c.hello] : []));
  }

  /** The seqs replayed on each connection that got a WELCOME. */
  replaysPerSession(): number[][] {
    return this.conns.filter((c) => c.welcomed).map((c) => c.replays.map((m) => m.seq));
  }

  /** Ends the newest connection, as a daemon that dies does. */
  dropConnection(): void {
    this.conns.at(-1)?.socket.destroy();
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }

  #receive(conn: FakeConn, m: Message): void {
    if (conn.refused) return;
    const send = (reply: Message) => conn.socket.write(encodeMessage(reply));
    switch (m.type) {
      case 'hello': {
        conn.hello = m;
        const answer = this.answerHello(m);
        if (answer !== 'welcome') {
          conn.refused = true;
          conn.socket.end(encodeMessage(answer));
          return;
        }
        const minor = m.minor ?? 0;
        conn.welcomed = true;
        send({
          type: 'welcome',
          version: PROTOCOL_VERSION,
          minor,
          maxInFlight: 64,
          sessionId: BigInt(this.conns.length),
          heartbeatMs: 60_000,
          maxBody: minor >= 1 ? 16_384 : 0,
        });
        if (this.endAfterWelcome(conn)) {
          conn.refused = true;
          conn.socket.end(encodeMessage({ type: 'goodbye', reason: GOODBYE_REASON.SHUTDOWN }));
        }
        return;
      }
      case 'sea':
      case 'nisv':
      case 'mmio':
      case 'sigbus':
        if (!m.replay) {
          conn.live.push(m);
          if (!this.answerLive) return;
          send(plainVerdict(m.seq));
          return;
        }
        conn.replays.push(m);
        this.emit('replay', conn, m);
        if (this.refuseReplay(m)) {
          conn.refused = true;
          conn.socket.end(
            encodeMessage({
              type: 'error',
              code: WIRE_ERROR.BAD_FIELD,
              message: `replay seq ${m.seq} refused`,
            }),
          );
          return;
        }
        if (this.stored.some((s) => s.seq === m.seq && s.timeNs === m.timeNs)) this.duplicates++;
        else this.stored.push(m);
        return;
      case 'heartbeat': {
        const what = this.echo(conn, ++conn.heartbeats);
        if (what === 'echo') send(m);
        else if (what === 'drop') conn.socket.destroy();
        return;
      }
      default:
        return;
    }
  }
}

/** A fake daemon listening, removed after the test. */
async function fake(t: { after: (fn: () => Promise<void>) => void }): Promise<FakeDaemon> {
  const d = new FakeDaemon();
  await d.listen();
  t.after(() => d.close());
  return d;
}

/** A client of `daemon` whose reconnects start at 10 ms and double up to 10 s (never reached here). */
function client(
  daemon: FakeDaemon,
  t: { after: (fn: () => Promise<void>) => void },
  opts: Partial<PluginClientOptions> = {},
): { c: PluginClient; delays: number[] } {
  const c = new PluginClient({
    socket: daemon.path,
    vmId: 'fake-vm',
    vcpuCount: 2,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
    reconnect: { initialMs: 10, maxMs: 10_000 },
    ...opts,
  });
  c.on('daemon-error', () => {});
  const delays: number[] = [];
  c.on('reconnecting', (ms: number) => delays.push(ms));
  t.after(() => c.close());
  return { c, delays };
}

/** Exits handled while no daemon is connected: each gets the fallback and is kept. Their seqs. */
async function keep(c: PluginClient, n: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) {
    const out = await c.handleExit(seaExit({ vcpu: i % 2, gpa: BigInt(i + 1) << 12n }));
    assert.equal(out.source, 'fallback');
    seqs.push(out.verdict.seq);
  }
  assert.equal(c.replayQueue, n);
  return seqs;
}

/** Every fallback ended exactly one way (vmm/plugin-types.ts). */
function assertAccounted(c: PluginClient): void {
  const s = c.stats;
  assert.equal(
    s.replayed + s.lateVerdicts + s.replayDropped + s.replaysRefused + s.invalidEvents + c.replayQueue,
    s.fallbacks,
    JSON.stringify({ ...s, queue: c.replayQueue }),
  );
}

/** The next WELCOME after which nothing is left to replay or awaiting its echo. */
const drained = (c: PluginClient) =>
  nextEvent(c, 'ready', 'a session with nothing left to replay', () => c.replayQueue === 0);

/** The next echo that leaves nothing kept. */
const echoedAll = (c: PluginClient) =>
  nextEvent(c, 'replayed', 'an echo that leaves nothing kept', () => c.replayQueue === 0);

test('an exit every daemon would refuse is never sent nor kept: the fallback answers it, counted', async (t) => {
  const daemon = await fake(t);
  const { c } = client(daemon, t);
  const invalid: string[] = [];
  c.on('invalid-event', (_m: EventMsg, reason: string) => invalid.push(reason));
  // Before connecting: not kept for the replay either.
  const before = await c.handleExit(seaExit({ vcpu: 2 }));
  assert.equal(before.source, 'fallback');
  assert.equal(c.replayQueue, 0, 'not kept');
  await c.connect();
  const outs = [
    await c.handleExit(seaExit({ vcpu: 7 })),
    await c.handleExit({ ...seaExit(), vcpu: null }),
    await c.handleExit({ type: 'sigbus', vcpu: 0, siCode: 7, addrLsb: 12, gpa: null }),
  ];
  assert.deepEqual(
    outs.map((o) => o.source),
    ['fallback', 'fallback', 'fallback'],
  );
  // A valid exit on the same session is answered by the daemon: the session is intact.
  const good = await c.handleExit(seaExit({ vcpu: 1 }));
  assert.equal(good.source, 'daemon');
  const ao = await c.handleExit({
    type: 'sigbus',
    vcpu: null,
    siCode: BUS_MCEERR_AO,
    addrLsb: 12,
    gpa: null,
  });
  assert.equal(ao.source, 'daemon', 'a SIGBUS without a vCPU is valid');
  // And after a reconnect nothing of them is replayed.
  const back = nextEvent(c, 'ready', 'the reconnect');
  daemon.dropConnection();
  await back;
  assert.equal(daemon.conns.length, 2);
  const sent = daemon.conns.flatMap((k) => [...k.live, ...k.replays]);
  assert.deepEqual(
    sent.map((m) => [m.type, m.vcpu]),
    [
      ['sea', 1],
      ['sigbus', null],
    ],
    'only the valid exits reached the daemon',
  );
  assert.equal(c.stats.invalidEvents, 4);
  assert.equal(c.stats.fallbacks, 4);
  assert.equal(invalid.length, 4);
  assert.match(invalid[0] as string, /vCPU 2 out of range/);
  assertAccounted(c);
});

test('in a 1.1 session the checks of 1.1 apply too: to live exits, and to kept events before their replay', async (t) => {
  const daemon = await fake(t);
  const { c } = client(daemon, t);
  const len3 = {
    type: 'mmio',
    vcpu: 0,
    physAddr: 0x8000000n,
    data: new Uint8Array(8),
    len: 3,
    isWrite: false,
  } as const;
  // Kept while no session says which version it speaks: 1.0 takes an MMIO len of 3.
  const kept = await c.handleExit(len3);
  const good = await c.handleExit(seaExit({ vcpu: 1 }));
  assert.equal(c.replayQueue, 2);
  const done = echoedAll(c);
  await c.connect();
  await done;
  assert.equal(c.stats.invalidEvents, 1, 'dropped before the 1.1 replay, counted');
  // Live in the 1.1 session: answered by the fallback, never sent.
  const live = await c.handleExit(len3);
  assert.equal(live.source, 'fallback');
  assert.equal(c.stats.invalidEvents, 2);
  assert.deepEqual(
    daemon.conns.flatMap((k) => [...k.replays, ...k.live]).map((m) => m.seq),
    [good.verdict.seq],
    `only the valid exit reached the daemon, not ${kept.verdict.seq} nor ${live.verdict.seq}`,
  );
  assertAccounted(c);
});

/**
 * The capability each event kind needs declared in 1.1 (§4.4): an exit of that kind, and for each
 * vCPU an exit that needs only what the HELLO still declares.
 */
const UNDECLARED = [
  {
    cap: 'NISV_TO_USER',
    exit: { type: 'nisv', vcpu: 0, esrIss: 0x10n, faultIpa: 0x8000000n },
    other: (vcpu: number): ExitReport => seaExit({ vcpu }),
  },
  {
    cap: 'SEA_TO_USER',
    exit: seaExit({ vcpu: 0 }),
    other: (vcpu: number): ExitReport => {
      return { type: 'mmio', vcpu, physAddr: 0x8000000n, data: new Uint8Array(8), len: 4, isWrite: false };
    },
  },
] as const;

for (const { cap, exit, other } of UNDECLARED) {
  test(`in a 1.1 session ${exit.type} from a HELLO without ${cap} is neither sent nor replayed: the fallback answers it`, async (t) => {
    const daemon = await fake(t);
    const { c } = client(daemon, t, { caps: DEFAULT_CAPS & ~CAP[cap] });
    const invalid: string[] = [];
    c.on('invalid-event', (_m: EventMsg, reason: string) => invalid.push(reason));
    // Kept while no session says which version it speaks: 1.0 does not check the capabilities.
    const kept = await c.handleExit(exit);
    const good = await c.handleExit(other(1));
    assert.equal(c.replayQueue, 2);
    const done = echoedAll(c);
    await c.connect();
    await done;
    assert.equal(c.version, '1.1');
    assert.equal(c.stats.invalidEvents, 1, 'dropped before the 1.1 replay, counted');
    assert.equal(c.stats.replaysRefused, 0, 'no session was spent on it');
    // Live in the 1.1 session: answered by the fallback, never sent; the session goes on.
    const live = await c.handleExit(exit);
    assert.equal(live.source, 'fallback');
    assert.equal(c.stats.invalidEvents, 2);
    const next = await c.handleExit(other(0));
    assert.equal(next.source, 'daemon');
    assert.deepEqual(
      daemon.conns.flatMap((k) => [...k.replays, ...k.live]).map((m) => m.seq),
      [good.verdict.seq, next.verdict.seq],
      `only the other exits reached the daemon, not ${kept.verdict.seq} nor ${live.verdict.seq}`,
    );
    assert.equal(daemon.conns.length, 1, 'one session throughout');
    const why = `${exit.type} event, but HELLO did not declare ${cap}`;
    assert.deepEqual(invalid, [why, why]);
    assertAccounted(c);
  });

  test(`in a 1.0 session the capabilities are not checked: ${exit.type} from a HELLO without ${cap} is sent`, async (t) => {
    const daemon = await fake(t);
    // A 1.0 daemon answers a 1.1 HELLO with ERROR BAD_FIELD; the client asks again for 1.0.
    daemon.answerHello = (h) =>
      (h.minor ?? 0) >= 1
        ? { type: 'error', code: WIRE_ERROR.BAD_FIELD, message: 'HELLO: reserved byte at body offset 2' }
        : 'welcome';
    const { c } = client(daemon, t, { caps: DEFAULT_CAPS & ~CAP[cap] });
    await c.connect();
    assert.equal(c.version, '1.0');
    const out = await c.handleExit(exit);
    assert.equal(out.source, 'daemon');
    assert.equal(c.stats.invalidEvents, 0);
  });
}

test('against the real daemon: a vCPU past vcpu_count gets the fallback and the session goes on', async (t) => {
  const d = await startDaemon({ metrics: false });
  const c = new PluginClient({
    socket: d.socket,
    vmId: 'local-checks',
    vcpuCount: 2,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  const errors: Message[] = [];
  c.on('daemon-error', (m: Message) => errors.push(m));
  t.after(async () => {
    await c.close();
    await d.stop();
    removeDir(d.dir);
  });
  await c.connect();
  const session = c.sessionId;
  const refused = await c.handleExit(seaExit({ vcpu: 2 }));
  assert.equal(refused.source, 'fallback');
  const ok = await c.handleExit(seaExit({ vcpu: 1 }));
  assert.equal(ok.source, 'daemon', 'the daemon answers the next exit on the same session');
  assert.equal(c.sessionId, session);
  assert.deepEqual(errors, [], 'the daemon never ended the session');
  assert.equal(c.stats.invalidEvents, 1);
  assert.equal(c.replayQueue, 0);
  assertAccounted(c);
});

/** A live exit gets the daemon's verdict; the session is then dropped: the reconnect starts at 10 ms. */
async function verdictResetsBackoff(c: PluginClient, daemon: FakeDaemon): Promise<void> {
  const out = await c.handleExit(seaExit({ vcpu: 0 }));
  assert.equal(out.source, 'daemon');
  const again = nextEvent<[number]>(c, 'reconnecting', 'the reconnect after the drop');
  daemon.dropConnection();
  assert.deepEqual(await again, [10], 'the verdict proved the session: the backoff started again');
}

test('a daemon that refuses every replay: the kept events drain one per session, the backoff doubling', async (t) => {
  const daemon = await fake(t);
  daemon.refuseReplay = () => true;
  const { c, delays } = client(daemon, t);
  const seqs = await keep(c, 3);
  const done = drained(c);
  await c.connect();
  await done;
  assert.deepEqual(
    daemon.replaysPerSession(),
    [[seqs[0]], [seqs[1]], [seqs[2]], []],
    'each session refused its first replay; the fourth had nothing to replay',
  );
  assert.equal(daemon.hellos.length, 4, 'one session per kept event, then one that stays');
  assert.deepEqual(delays, [10, 20, 40], 'no WELCOME reset the backoff: each refused session doubled it');
  assert.equal(c.stats.replaysRefused, 3);
  assert.equal(c.stats.replayed, 0);
  assert.ok(c.connected);
  assertAccounted(c);
  // Nothing to replay proves nothing yet; a verdict does, and the backoff starts again.
  await verdictResetsBackoff(c, daemon);
});

test('a daemon that ends every session right after WELCOME: the backoff doubles, no reconnect storm', async (t) => {
  const daemon = await fake(t);
  daemon.endAfterWelcome = () => true;
  const { c, delays } = client(daemon, t);
  const sixth = nextEvent(c, 'reconnecting', 'the sixth reconnect', () => delays.length === 6);
  await c.connect();
  await sixth;
  assert.deepEqual(delays, [10, 20, 40, 80, 160, 320], 'a WELCOME with nothing to replay reset nothing');
  assert.equal(daemon.hellos.length, 6, 'one session per scheduled reconnect');
  // A session that gets a verdict proved useful: after it, the backoff starts again.
  daemon.endAfterWelcome = () => false;
  await nextEvent(c, 'ready', 'a session that stays up');
  await verdictResetsBackoff(c, daemon);
});

test('a session up as long as the backoff bound proves itself without a verdict: the backoff starts again', async (t) => {
  const daemon = await fake(t);
  daemon.endAfterWelcome = () => true;
  const maxMs = 80;
  const { c, delays } = client(daemon, t, { reconnect: { initialMs: 10, maxMs } });
  const fourth = nextEvent(c, 'reconnecting', 'the fourth reconnect', () => delays.length === 4);
  await c.connect();
  await fourth;
  assert.deepEqual(delays, [10, 20, 40, 80]);
  daemon.endAfterWelcome = () => false;
  await nextEvent(c, 'ready', 'a session that stays up');
  // Set after the client's own timer of maxMs (started before 'ready' was emitted), this one
  // expires after it, whatever the machine's load: by then the session has been up for the bound.
  await new Promise((resolve) => setTimeout(resolve, maxMs + 1));
  const again = nextEvent<[number]>(c, 'reconnecting', 'the reconnect after the drop');
  daemon.dropConnection();
  assert.deepEqual(
    await again,
    [10],
    'up for the bound, the session proved itself: the backoff started again',
  );
});

test('a replay refused behind others: the ones before it are stored once, nothing else is lost', async (t) => {
  const daemon = await fake(t);
  const { c, delays } = client(daemon, t);
  const [a, b, bad, d] = (await keep(c, 4)) as [number, number, number, number];
  daemon.refuseReplay = (m) => m.seq === bad;
  const done = echoedAll(c);
  await c.connect();
  await done;
  assert.deepEqual(daemon.replaysPerSession(), [[a, b, bad], [b, bad], [bad], [d]]);
  assert.deepEqual(
    daemon.stored.map((m) => m.seq),
    [a, b, d],
    'every event but the refused one was stored',
  );
  assert.equal(daemon.duplicates, 1, 'b, stored in the first session, came again in the second');
  assert.deepEqual(delays, [10, 20, 40]);
  assert.deepEqual(
    { refused: c.stats.replaysRefused, replayed: c.stats.replayed, queue: c.replayQueue },
    { refused: 3, replayed: 1, queue: 0 },
  );
  assertAccounted(c);
  // The fourth session's echo started the backoff again.
  const again = nextEvent<[number]>(c, 'reconnecting', 'the reconnect after the drop');
  daemon.dropConnection();
  assert.deepEqual(await again, [10]);
});

test('sessions that end before the echo without an ERROR drop nothing, and the backoff doubles', async (t) => {
  const daemon = await fake(t);
  // The first two sessions are dropped at the replay HEARTBEAT, unanswered; the third echoes it.
  daemon.echo = (conn) => (daemon.conns.indexOf(conn) >= 2 ? 'echo' : 'drop');
  const { c, delays } = client(daemon, t);
  const seqs = await keep(c, 2);
  const done = echoedAll(c);
  await c.connect();
  await done;
  assert.deepEqual(daemon.replaysPerSession(), [seqs, seqs, seqs], 'every kept event went again');
  assert.deepEqual(delays, [10, 20], 'a WELCOME alone did not reset the backoff');
  assert.deepEqual(
    { refused: c.stats.replaysRefused, replayed: c.stats.replayed, queue: c.replayQueue },
    { refused: 0, replayed: 2, queue: 0 },
  );
  assertAccounted(c);
  const again = nextEvent<[number]>(c, 'reconnecting', 'the reconnect after the drop');
  daemon.dropConnection();
  assert.deepEqual(await again, [10], 'the echo reset it');
});

test("an ERROR after the session's replay echo drops nothing, even with a later batch unechoed", async (t) => {
  const daemon = await fake(t);
  // 1.0, where an exit that times out on the live connection is reported there at once; the
  // daemon answers no live exit, echoes the WELCOME's replays and holds every later echo.
  daemon.answerLive = false;
  daemon.echo = (_conn, n) => (n === 1 ? 'echo' : 'ignore');
  const { c } = client(daemon, t, { minor: 0, deadlineMs: 50 });
  const [a] = (await keep(c, 1)) as [number];
  const first = nextEvent(c, 'replayed', 'the echo of the WELCOME replays');
  await c.connect();
  await first;
  const reported = nextEvent<[FakeConn, EventMsg]>(
    daemon,
    'replay',
    'the live exit reported on the live connection',
  );
  const out = await c.handleExit(seaExit({ vcpu: 1 }));
  assert.equal(out.source, 'fallback');
  const [conn, live] = await reported;
  assert.equal(live.seq, out.verdict.seq);
  const back = echoedAll(c);
  conn.socket.end(encodeMessage({ type: 'error', code: WIRE_ERROR.INTERNAL, message: 'a daemon bug' }));
  await back;
  assert.deepEqual(daemon.replaysPerSession(), [[a, live.seq], [live.seq]], 'the unechoed replay went again');
  assert.deepEqual(
    { refused: c.stats.replaysRefused, replayed: c.stats.replayed },
    { refused: 0, replayed: 2 },
  );
  assertAccounted(c);
});

test('a version lowered for an old daemon lasts one session: every later connect asks for 1.1 again', async (t) => {
  const daemon = await fake(t);
  let daemonMinor = 0;
  let rejectNext = 0;
  daemon.answerHello = (h) => {
    // A 1.0 daemon answers a 1.1 HELLO with ERROR BAD_FIELD (its reserved field at +2 is set).
    if ((h.minor ?? 0) > daemonMinor)
      return { type: 'error', code: WIRE_ERROR.BAD_FIELD, message: 'HELLO: reserved byte at body offset 2' };
    if (rejectNext > 0) {
      rejectNext--;
      return { type: 'reject', code: WIRE_ERROR.VM_IN_USE, message: 'VM id is held by a live session' };
    }
    return 'welcome';
  };
  const { c } = client(daemon, t);
  const minors = () => daemon.hellos.map((h) => h.minor ?? 0);
  await c.connect();
  assert.deepEqual(minors(), [1, 0]);
  assert.equal(c.version, '1.0');

  // The session ends; the next connect asks for 1.1 again, is refused, gets 1.0 but is rejected
  // (a failed connect), and the one after that asks for 1.1 again too.
  rejectNext = 1;
  let back = nextEvent(c, 'ready', 'the reconnect to the old daemon');
  daemon.dropConnection();
  await back;
  assert.deepEqual(minors(), [1, 0, 1, 0, 1, 0]);
  assert.equal(c.version, '1.0');

  // The daemon is upgraded: the next session is 1.1.
  daemonMinor = 1;
  back = nextEvent(c, 'ready', 'the reconnect to the upgraded daemon');
  daemon.dropConnection();
  await back;
  assert.deepEqual(minors(), [1, 0, 1, 0, 1, 0, 1]);
  assert.equal(c.version, '1.1');
});

test('against the real daemon: a kept NISV its HELLO did not declare is dropped before the 1.1 replay, the others stored once', async (t) => {
  const d = await startDaemon({ metrics: false });
  // 1.1 refuses an NISV event from a plugin whose HELLO did not declare NISV_TO_USER (§4.4); the
  // client makes that check itself (vmm/local-checks.ts), so no session is refused for it.
  const c = new PluginClient({
    socket: d.socket,
    vmId: 'undeclared-nisv',
    vcpuCount: 2,
    caps: DEFAULT_CAPS & ~CAP.NISV_TO_USER,
    deadlineMs: PATIENT_DEADLINE_MS,
    reconnect: { initialMs: 10, maxMs: 10_000 },
  });
  c.on('daemon-error', () => {});
  const delays: number[] = [];
  c.on('reconnecting', (ms: number) => delays.push(ms));
  t.after(async () => {
    await c.close();
    await d.stop();
    removeDir(d.dir);
  });
  const a = await c.handleExit(seaExit({ vcpu: 0, gpa: 0x1000n }));
  const b = await c.handleExit(seaExit({ vcpu: 1, gpa: 0x2000n }));
  const bad = await c.handleExit({ type: 'nisv', vcpu: 0, esrIss: 0x10n, faultIpa: 0x8000000n });
  const e = await c.handleExit(seaExit({ vcpu: 0, gpa: 0x3000n }));
  assert.equal(c.replayQueue, 4);
  const done = echoedAll(c);
  await c.connect();
  await done;
  assert.deepEqual(delays, [], 'the first session replayed everything: no reconnect');
  assert.deepEqual(
    { refused: c.stats.replaysRefused, invalid: c.stats.invalidEvents, replayed: c.stats.replayed },
    { refused: 0, invalid: 1, replayed: 3 },
  );
  assertAccounted(c);
  const events = await cliJson<StoredEvent[]>(d.controlSocket, ['events', '--vm', 'undeclared-nisv']);
  assert.deepEqual(
    events.map((x) => [x.seq, x.replay]).sort((x, y) => Number(x[0]) - Number(y[0])),
    [
      [a.verdict.seq, true],
      [b.verdict.seq, true],
      [e.verdict.seq, true],
    ],
    `stored once each, the undeclared NISV (seq ${bad.verdict.seq}) never`,
  );
});
