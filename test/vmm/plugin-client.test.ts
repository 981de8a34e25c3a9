/**
 * The reference client's fallback bookkeeping against a scripted daemon on a real Unix socket: the
 * test decides when each VERDICT and each HEARTBEAT echo goes out, so a verdict can come after its
 * deadline at exactly the moment under test. Every fallback must end one way only — replayed,
 * answered late, or dropped — and a late verdict's event is never reported again.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ACTION,
  APPLIED_SOURCE,
  CAP,
  DAEMON_ACCEPTS,
  type EventMsg,
  encodeMessage,
  FrameParser,
  type Message,
  WIRE_ERROR,
} from '../../protocol/index.js';
import { PluginClient, type PluginClientOptions, type VerdictOutcome } from '../../vmm/plugin-client.js';
import { seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { plainVerdict, plainWelcome } from '../helpers/verdicts.js';
import { nextEvent, within } from '../helpers/wait.js';

/** A daemon that answers HELLO and otherwise only records, until the test tells it to answer. */
class ScriptedDaemon {
  readonly dir = mkdtempSync(join(tmpdir(), 'seawall-scripted-'));
  readonly path = join(this.dir, 'plugin.sock');
  readonly received: Message[] = [];
  readonly #server: Server;
  #conn: Socket | null = null;
  readonly #waiters = new Set<() => void>();

  constructor() {
    this.#server = createServer((conn) => {
      this.#conn = conn;
      const parser: FrameParser = new FrameParser(
        (m) => {
          // The body sizes of the version the HELLO asks for (APPLIED is 16 bytes in 1.1).
          if (m.type === 'hello') parser.setMinor(m.minor ?? 0);
          this.#receive(conn, m);
        },
        { accept: DAEMON_ACCEPTS },
      );
      conn.on('data', (chunk: Buffer) => parser.push(chunk));
      conn.on('error', () => {});
    });
  }

  listen(): Promise<void> {
    return within(
      'the scripted daemon to listen',
      new Promise((resolve) => this.#server.listen(this.path, () => resolve())),
    );
  }

  /** The first message received (past or future, from index `from` on) that matches. */
  async next<T extends Message['type']>(
    type: T,
    pred: (m: Extract<Message, { type: T }>) => boolean = () => true,
    from = 0,
  ) {
    const match = (m: Message): m is Extract<Message, { type: T }> => m.type === type && pred(m as never);
    return within(
      `${type} at the scripted daemon`,
      new Promise<Extract<Message, { type: T }>>((resolve) => {
        const check = () => {
          const m = this.received.slice(from).find(match);
          if (!m) return;
          this.#waiters.delete(check);
          resolve(m);
        };
        this.#waiters.add(check);
        check();
      }),
      { state: () => `received: ${this.received.map((m) => m.type).join(',') || 'nothing'}` },
    );
  }

  verdict(seq: number, action: number = ACTION.RESUME): void {
    this.send(plainVerdict(seq, action));
  }

  echo(nonce: bigint): void {
    this.send({ type: 'heartbeat', nonce });
  }

  /** Ends the current connection, as a daemon that dies does. */
  dropConnection(): void {
    this.#conn?.destroy();
  }

  async close(): Promise<void> {
    this.#conn?.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }

  send(m: Message): void {
    this.#conn?.write(encodeMessage(m));
  }

  #receive(conn: Socket, m: Message): void {
    this.received.push(m);
    if (m.type === 'hello') conn.write(encodeMessage(plainWelcome(m)));
    for (const wake of this.#waiters) wake();
  }
}

async function connected(daemon: ScriptedDaemon): Promise<PluginClient> {
  const c = new PluginClient({
    socket: daemon.path,
    vmId: 'scripted-vm',
    vcpuCount: 2,
    caps: DEFAULT_CAPS,
    // Short: each exit below is meant to miss it; nothing waits on time passing but the client.
    deadlineMs: 50,
    // 1.0: a fallback on the live connection is reported there at once. (1.1 keeps it for its late
    // verdict and answers that with APPLIED: test/protocol/conformance/ holds those scenarios.)
    minor: 0,
  });
  await c.connect();
  return c;
}

/**
 * A scripted daemon listening and a client of it made with `opts` (not connected), both closed
 * after the test; `reconnecting` holds the delays the client announces.
 */
async function scripted(
  t: { after: (fn: () => Promise<void>) => void },
  opts: Partial<PluginClientOptions> = {},
): Promise<{ daemon: ScriptedDaemon; c: PluginClient; reconnecting: number[] }> {
  const daemon = new ScriptedDaemon();
  await daemon.listen();
  const c = new PluginClient({
    socket: daemon.path,
    vmId: 'scripted-vm',
    vcpuCount: 2,
    caps: DEFAULT_CAPS,
    ...opts,
  });
  const reconnecting: number[] = [];
  c.on('reconnecting', (ms: number) => reconnecting.push(ms));
  t.after(async () => {
    await c.close();
    await daemon.close();
  });
  return { daemon, c, reconnecting };
}

/** Reports one exit that the daemon leaves unanswered, and waits for its fallback. */
async function fallBack(c: PluginClient, vcpu: number): Promise<EventMsg> {
  const fell = nextEvent<[EventMsg, VerdictOutcome]>(c, 'fallback', `the fallback of vCPU ${vcpu}`);
  const out = await c.handleExit(seaExit({ vcpu }));
  assert.equal(out.source, 'fallback');
  const [msg] = await fell;
  return msg;
}

const accounted = (c: PluginClient) =>
  c.stats.replayed +
  c.stats.lateVerdicts +
  c.stats.replayDropped +
  c.stats.replaysRefused +
  c.stats.invalidEvents +
  c.replayQueue;

test('a late verdict for a kept event: not reported, counted as late', async (t) => {
  const daemon = new ScriptedDaemon();
  await daemon.listen();
  const c = await connected(daemon);
  t.after(async () => {
    await c.close();
    await daemon.close();
  });

  // A's fallback is reported at once: its replay and a HEARTBEAT are on the wire, unechoed.
  const a = await fallBack(c, 0);
  const beat = await daemon.next('heartbeat');
  await daemon.next('sea', (m) => m.replay && m.seq === a.seq);
  // B falls back while A's replay awaits its echo: B is kept, not yet sent.
  const b = await fallBack(c, 1);
  assert.equal(c.replayQueue, 2);

  // B's verdict arrives after all.
  const late = nextEvent(c, 'late-verdict', `the late verdict of seq ${b.seq}`);
  daemon.verdict(b.seq);
  await late;
  assert.equal(c.stats.lateVerdicts, 1);
  assert.equal(c.replayQueue, 1, 'B is no longer kept');

  daemon.echo(beat.nonce);
  await nextEvent(c, 'replayed', 'the echo of the replay HEARTBEAT');
  assert.deepEqual(
    {
      fallbacks: c.stats.fallbacks,
      replayed: c.stats.replayed,
      late: c.stats.lateVerdicts,
      queue: c.replayQueue,
    },
    { fallbacks: 2, replayed: 1, late: 1, queue: 0 },
  );
  assert.equal(accounted(c), c.stats.fallbacks);
  assert.ok(
    !daemon.received.some((m) => m.type === 'sea' && m.replay && m.seq === b.seq),
    'the late-answered event was never reported',
  );
});

test('a late verdict for a replay awaiting its echo: counted as late, not as replayed', async (t) => {
  const daemon = new ScriptedDaemon();
  await daemon.listen();
  const c = await connected(daemon);
  t.after(async () => {
    await c.close();
    await daemon.close();
  });

  const a = await fallBack(c, 0);
  const beat = await daemon.next('heartbeat');
  await daemon.next('sea', (m) => m.replay && m.seq === a.seq);
  // The daemon decided A (stored it, then answered) before it read A's replay: the replay is a
  // duplicate it skips, so the client must not count it as a report.
  const late = nextEvent(c, 'late-verdict', `the late verdict of seq ${a.seq}`);
  daemon.verdict(a.seq);
  await late;
  daemon.echo(beat.nonce);
  // The echo acknowledges nothing left to count; the next replay flush shows the queue is free.
  const b = await fallBack(c, 1);
  const beat2 = await daemon.next('heartbeat', (m) => m.nonce !== beat.nonce);
  await daemon.next('sea', (m) => m.replay && m.seq === b.seq);
  daemon.echo(beat2.nonce);
  await nextEvent(c, 'replayed', 'the echo of the second replay HEARTBEAT', (n) => n === 1);
  assert.deepEqual(
    {
      fallbacks: c.stats.fallbacks,
      replayed: c.stats.replayed,
      late: c.stats.lateVerdicts,
      queue: c.replayQueue,
    },
    { fallbacks: 2, replayed: 1, late: 1, queue: 0 },
  );
  assert.equal(accounted(c), c.stats.fallbacks);
});

test('a connection lost before the echo: the replays go again after reconnecting, counted once', async (t) => {
  const daemon = new ScriptedDaemon();
  await daemon.listen();
  const c = await connected(daemon);
  t.after(async () => {
    await c.close();
    await daemon.close();
  });
  const a = await fallBack(c, 0);
  await daemon.next('heartbeat');
  const back = nextEvent(c, 'ready', 'the reconnect after the dropped connection');
  const from = daemon.received.length;
  daemon.dropConnection();
  await back;
  // After the new HELLO: the kept event again, then a HEARTBEAT.
  const hello = await daemon.next('hello', () => true, from);
  const again = daemon.received.indexOf(hello);
  await daemon.next('sea', (m) => m.replay && m.seq === a.seq, again);
  const beat = await daemon.next('heartbeat', () => true, again);
  daemon.echo(beat.nonce);
  await nextEvent(c, 'replayed', 'the echo on the new connection');
  assert.deepEqual(
    {
      fallbacks: c.stats.fallbacks,
      replayed: c.stats.replayed,
      late: c.stats.lateVerdicts,
      queue: c.replayQueue,
    },
    { fallbacks: 1, replayed: 1, late: 0, queue: 0 },
  );
});

/**
 * A VERDICT the client must refuse (§5.3), written by `answer` for the one exit: the exit gets the
 * fallback, the client reconnects and replays it, and no verdict is counted. The protocol error.
 */
async function refusedVerdict(
  t: { after: (fn: () => Promise<void>) => void },
  answer: (daemon: ScriptedDaemon, seq: number) => void,
): Promise<{ error: Error; out: VerdictOutcome }> {
  // 1.1, and a deadline no exit below reaches: only the refusal makes the fallback.
  const { daemon, c } = await scripted(t, { deadlineMs: 60_000, minor: 1 });
  await c.connect();
  const refused = nextEvent<[Error]>(c, 'protocol-error', 'the protocol error');
  const back = nextEvent(c, 'ready', 'the reconnect after the protocol error');
  const exit = c.handleExit(seaExit({ vcpu: 0 }));
  const sent = await daemon.next('sea');
  const from = daemon.received.length;
  answer(daemon, sent.seq);
  const out = await within('the outcome of the exit', exit);
  assert.equal(out.source, 'fallback', 'the verdict is not handed to the VMM');
  await back;
  const hello = await daemon.next('hello', () => true, from);
  await daemon.next('sea', (m) => m.replay && m.seq === sent.seq, daemon.received.indexOf(hello));
  assert.equal(c.stats.verdicts, 0);
  return { error: (await refused)[0], out };
}

test('a VERDICT with an unknown action: the exit gets the fallback, the client reconnects and replays it', async (t) => {
  const { error } = await refusedVerdict(t, (daemon, seq) => daemon.verdict(seq, 9));
  assert.match(error.message, /unknown action 9/);
});

test('an exit no frame can carry (a negative GVA): the fallback answers it at once, counted, never sent nor kept', async (t) => {
  const { daemon, c } = await scripted(t);
  await c.connect();
  const invalid = nextEvent<[EventMsg, string]>(c, 'invalid-event', 'the refusal of the negative GVA');
  const out = await c.handleExit({ ...seaExit({ vcpu: 0 }), gva: -4096n });
  assert.equal(out.source, 'fallback');
  assert.match((await invalid)[1], /not encodable/);
  assert.deepEqual(
    { sent: c.stats.sent, invalid: c.stats.invalidEvents, queue: c.replayQueue },
    { sent: 0, invalid: 1, queue: 0 },
  );
  // The session goes on: the next exit is sent and answered.
  const next = c.handleExit(seaExit({ vcpu: 1 }));
  daemon.verdict((await daemon.next('sea')).seq);
  assert.equal((await within('the verdict of the next exit', next)).source, 'daemon');
});

test('an exit no frame can carry, handled while disconnected: not kept, so the next WELCOME completes the connect', async (t) => {
  const { c, reconnecting } = await scripted(t);
  c.on('protocol-error', () => {});
  const out = await c.handleExit({ ...seaExit({ vcpu: 0 }), gva: -1n });
  assert.equal(out.source, 'fallback');
  assert.equal(c.replayQueue, 0);
  await within('connect() after the refused exit', c.connect());
  assert.ok(c.connected);
  assert.deepEqual(reconnecting, []);
});

test('one reconnect pending at a time: a session lost while one is pending schedules no other', async (t) => {
  // A reconnect delay no step below reaches: the first stays pending throughout.
  const { daemon, c, reconnecting } = await scripted(t, { reconnect: { initialMs: 60_000, maxMs: 60_000 } });
  await c.connect();
  let lost = nextEvent(c, 'disconnected', 'the first lost session');
  daemon.dropConnection();
  await lost;
  assert.equal(reconnecting.length, 1);
  // The VMM connects by itself meanwhile, and that session is lost too.
  await c.connect();
  lost = nextEvent(c, 'disconnected', 'the second lost session');
  daemon.dropConnection();
  await lost;
  assert.equal(reconnecting.length, 1, 'the pending reconnect is the only one');
});

test('a late KILL is handed to the VMM, and APPLIED says the guest got the fallback', async (t) => {
  // 1.1: the event stays the daemon's to decide on the live connection after its deadline.
  const { daemon, c } = await scripted(t, { deadlineMs: 50, minor: 1 });
  await c.connect();
  const kills: { seq: number; graceMs: number; late: boolean }[] = [];
  c.on('kill', (k) => kills.push(k));
  const out = await c.handleExit(seaExit({ vcpu: 0 }));
  assert.equal(out.source, 'fallback');
  const sent = await daemon.next('sea');
  const late = nextEvent(c, 'late-verdict', `the late verdict of seq ${sent.seq}`);
  // The daemon enforces this KILL when its grace runs out, whatever the vCPU got meanwhile.
  daemon.send({ ...plainVerdict(sent.seq, ACTION.KILL), graceMs: 2000 });
  await late;
  assert.deepEqual(kills, [{ seq: sent.seq, graceMs: 2000, late: true }]);
  const applied = await daemon.next('applied', (m) => m.seq === sent.seq);
  assert.deepEqual(applied.applied, { action: out.verdict.action, source: APPLIED_SOURCE.FALLBACK });
});

test('a 1.1 HELLO a 1.1 daemon would refuse is an invalid option, not a reason to fall back to 1.0', () => {
  const base = { socket: '/nonexistent/plugin.sock', vmId: 'vm', vcpuCount: 1 };
  const posted = CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS | CAP.EXT_ABT_ESR;
  for (const opts of [
    { ...base, caps: DEFAULT_CAPS, vmmPid: 0 },
    { ...base, caps: posted, extAbtEsrCap: 0 },
    { ...base, caps: DEFAULT_CAPS & ~CAP.EXT_ABT_ESR, extAbtEsrCap: 242 },
    { ...base, caps: DEFAULT_CAPS, vmId: '' },
  ])
    assert.throws(() => new PluginClient(opts), { code: 'SEAWALL_VMM_INVALID_OPTION' }, JSON.stringify(opts));
  // 1.0 has no such rule: the same options are a valid 1.0 HELLO.
  assert.doesNotThrow(() => new PluginClient({ ...base, caps: DEFAULT_CAPS, vmmPid: 0, minor: 0 }));
});

test('an ERROR after WELCOME ends the session at once: a KILL the daemon writes behind it is not acted on', async (t) => {
  // A deadline no step below reaches: only the end of the session makes the fallback.
  const { daemon, c } = await scripted(t, { deadlineMs: 60_000, reconnect: { initialMs: 60_000 } });
  c.on('daemon-error', () => {});
  await c.connect();
  const kills: unknown[] = [];
  c.on('kill', (k) => kills.push(k));
  const exit = c.handleExit(seaExit({ vcpu: 0 }));
  const sent = await daemon.next('sea');
  daemon.send({ type: 'error', code: WIRE_ERROR.BAD_FIELD, message: 'refused' });
  daemon.send(plainVerdict(sent.seq, ACTION.KILL));
  const out = await within('the outcome of the exit', exit);
  assert.equal(out.source, 'fallback');
  assert.deepEqual(kills, []);
  assert.equal(c.connected, false);
});

test('an INJECT whose image the declared ABI forbids: the exit gets the fallback, the client reconnects and replays it', async (t) => {
  const { error, out } = await refusedVerdict(t, (daemon, seq) => {
    // The posted layout's ext_iabt_pending, a pad byte of the merged ABI this HELLO declared.
    const image = new Uint8Array(64);
    image.set([0, 0, 1, 1]);
    daemon.send({ ...plainVerdict(seq, ACTION.INJECT), vcpuEvents: image });
  });
  assert.match(error.message, /byte 3 .*merged/);
  assert.deepEqual(
    [...out.verdict.vcpuEvents.subarray(0, 4)],
    [0, 0, 1, 0],
    'the fallback: the merged image',
  );
});
