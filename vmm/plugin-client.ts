/**
 * The reference plugin in TypeScript: what a VMM links to talk to seawall. It connects, says
 * HELLO, sends each exit and waits for the verdict with a deadline. When the deadline passes or
 * the daemon goes away, the configured local fallback answers at once and the event is kept; once
 * reconnected (with exponential backoff) the kept events are reported as REPLAY events, so the
 * daemon's counts stay true. An exit every daemon would refuse (vmm/local-checks.ts) is answered
 * by the fallback and counted, never sent or kept. The backoff starts again only once a session
 * proved useful (its replays echoed, a verdict received, or up for `reconnect.maxMs`): a daemon
 * that ends each session right after WELCOME is reconnected to at the backoff's bound, not in a
 * storm. A session the daemon ends with an ERROR before that echo drops the oldest replay it
 * carried: a replay the daemon refuses cannot make the client reconnect for ever. A C or Rust
 * plugin does the same from docs/protocol.md.
 *
 * Longer than 350 lines: the reference client is one state machine (connect, handshake, deadline,
 * fallback, replay) that VMM authors read top to bottom.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { thrownText } from '../errors/index.js';
import { checkSocketPath } from '../kvm/index.js';
import {
  ACTION,
  APPLIED_SOURCE,
  checkHello11,
  type EventMsg,
  encodeMessage,
  FrameParser,
  GOODBYE_REASON,
  type HelloMsg,
  isProtocolError,
  type Message,
  PLUGIN_ACCEPTS,
  PROTOCOL_MINOR,
  PROTOCOL_VERSION,
  VERDICT_FLAG,
  type VerdictMsg,
  WIRE_ERROR,
} from '../protocol/index.js';
import { VmmError } from './errors.js';
import { localRefusal } from './local-checks.js';
import {
  type ExitReport,
  fallbackVerdict,
  type PluginClientOptions,
  type PluginClientStats,
  type VerdictOutcome,
} from './plugin-types.js';
import { ReplayQueue } from './replay-queue.js';
import { verdictRefusal } from './verdict-checks.js';

export * from './plugin-types.js';

/** The frame of `msg`, or why none can carry it (a field out of its wire type's range). */
function encodable(msg: EventMsg): Buffer | string {
  try {
    return encodeMessage(msg);
  } catch (err) {
    return `not encodable: ${thrownText(err)}`;
  }
}

/** Frames that, after WELCOME, end the session (docs/protocol.md §3). */
const SESSION_ENDING: ReadonlySet<Message['type']> = new Set(['error', 'goodbye', 'reject', 'welcome']);

/** The action codes this client can carry out; any other in a VERDICT is a protocol error. */
const KNOWN_ACTIONS: ReadonlySet<number> = new Set(Object.values(ACTION));

interface Pending {
  resolve: (o: VerdictOutcome) => void;
  timer: NodeJS.Timeout;
  msg: EventMsg;
  startNs: bigint;
}

export class PluginClient extends EventEmitter {
  readonly opts: Required<Omit<PluginClientOptions, 'labels' | 'reconnect'>> & {
    labels: Record<string, string>;
    reconnect: { initialMs: number; maxMs: number };
  };
  readonly stats: PluginClientStats = {
    sent: 0,
    verdicts: 0,
    fallbacks: 0,
    replayed: 0,
    lateVerdicts: 0,
    replayDropped: 0,
    replaysRefused: 0,
    invalidEvents: 0,
    reconnects: 0,
  };
  #socket: Socket | null = null;
  #ready = false;
  #closed = false;
  #seq = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #replay: ReplayQueue;
  #backoff: number;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #sessionId: bigint | null = null;
  /**
   * The minor version this connect asks for: `opts.minor`, lowered only for the retry after a
   * daemon said it speaks less (and so for the session that retry gets).
   */
  #askMinor: number;
  /** The minor version of the current session (its WELCOME's). */
  #minor = 0;
  #maxBody = 0;
  /** The current session's replays (those written at its WELCOME) await their HEARTBEAT echo. */
  #awaitingEcho = false;
  /** The daemon ended the current session with an ERROR after WELCOME. */
  #refused = false;
  /** Resets the backoff once the current session has been up for `reconnect.maxMs`. */
  #provenTimer: NodeJS.Timeout | null = null;

  constructor(opts: PluginClientOptions) {
    super();
    this.opts = {
      labels: {},
      extAbtEsrCap: 0,
      vmmPid: process.pid,
      deadlineMs: 1000,
      fallback: 'inject',
      maxReplay: 4096,
      helloTimeoutMs: 10_000,
      minor: PROTOCOL_MINOR,
      ...opts,
      reconnect: { initialMs: 50, maxMs: 2000, ...opts.reconnect },
    };
    if (!Number.isInteger(this.opts.minor) || this.opts.minor < 0 || this.opts.minor > PROTOCOL_MINOR)
      throw new VmmError(
        'SEAWALL_VMM_INVALID_OPTION',
        `minor ${this.opts.minor}: this client speaks 1.0 to 1.${PROTOCOL_MINOR}`,
      );
    this.#checkHello();
    this.#askMinor = this.opts.minor;
    this.#replay = new ReplayQueue(this.opts.maxReplay);
    this.#backoff = this.opts.reconnect.initialMs;
  }

  /**
   * The HELLO these options make, checked as a daemon checks it: a 1.1 HELLO a 1.1 daemon refuses
   * (vmm_pid 0, EXT_ABT_ESR without ext_abt_esr_cap) would be taken for a 1.0 daemon's answer and
   * retried as 1.0, silently losing 1.1; one the encoder cannot write would fail at each connect.
   */
  #checkHello(): void {
    try {
      const hello = this.#hello(this.opts.minor);
      encodeMessage(hello);
      if (this.opts.minor >= 1) checkHello11(hello);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      throw new VmmError('SEAWALL_VMM_INVALID_OPTION', `HELLO: ${err.message}`);
    }
  }

  #hello(minor: number): HelloMsg {
    return {
      type: 'hello',
      version: PROTOCOL_VERSION,
      minor,
      caps: this.opts.caps,
      vmmPid: this.opts.vmmPid,
      vcpuCount: this.opts.vcpuCount,
      extAbtEsrCap: this.opts.extAbtEsrCap,
      vmId: this.opts.vmId,
      labels: this.opts.labels,
    };
  }

  /** The negotiated version of the current (or last) session: `1.0` or `1.1`. */
  get version(): string {
    return `${PROTOCOL_VERSION}.${this.#minor}`;
  }

  /** WELCOME's max_body (1.1); 0 in a 1.0 session. */
  get maxBody(): number {
    return this.#maxBody;
  }

  get connected(): boolean {
    return this.#ready;
  }

  /** The session id from the last WELCOME (what the attach channel names); null before one. */
  get sessionId(): bigint | null {
    return this.#sessionId;
  }

  /** Events handled by fallback and not yet reported. */
  get replayQueue(): number {
    return this.#replay.size;
  }

  /**
   * Connects and completes the handshake; rejects on REJECT, refusal or timeout. Version
   * negotiation (§10): a REJECT VERSION naming a lower 1.x, or the ERROR BAD_FIELD with which a 1.0
   * daemon answers a 1.1 HELLO, makes it ask once more with the version the daemon speaks. That
   * lower version is for this retry and its session only: every connect first asks for
   * `opts.minor`, so a daemon upgraded meanwhile is spoken to in its new version.
   */
  async connect(): Promise<void> {
    this.#askMinor = this.opts.minor;
    try {
      await this.#connectOnce();
    } catch (err) {
      const lower = this.#lowerVersion(err);
      if (lower === null) throw err;
      this.#askMinor = lower;
      await this.#connectOnce();
    }
  }

  /** The minor to retry with after a failed handshake, or null when retrying cannot help. */
  #lowerVersion(err: unknown): number | null {
    if (!(err instanceof VmmError) || this.#askMinor === 0) return null;
    const { wireCode, supported } = err.detail as {
      wireCode?: number;
      supported?: { major: number; minor: number };
    };
    if (
      wireCode === WIRE_ERROR.VERSION &&
      supported?.major === PROTOCOL_VERSION &&
      supported.minor < this.#askMinor
    )
      return supported.minor;
    if (wireCode === WIRE_ERROR.BAD_FIELD) return 0;
    return null;
  }

  #connectOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      checkSocketPath(this.opts.socket, 'connect');
      const socket = connect(this.opts.socket);
      let settled = false;
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(
        () => done(new VmmError('SEAWALL_VMM_HANDSHAKE', `no WELCOME within ${this.opts.helloTimeoutMs} ms`)),
        this.opts.helloTimeoutMs,
      );
      // Nothing read behind a frame that dropped the connection is acted on, even in the same chunk.
      const parser = new FrameParser((m) => socket.destroyed || this.#onMessage(m, done), {
        accept: PLUGIN_ACCEPTS,
      });
      socket.on('data', (chunk: Buffer) => {
        try {
          parser.push(chunk);
        } catch (err) {
          this.emit('protocol-error', err);
          socket.destroy();
        }
      });
      socket.on('error', (err) => done(err));
      socket.on('close', () => {
        done(new VmmError('SEAWALL_VMM_HANDSHAKE', 'connection closed before WELCOME'));
        this.#onDisconnect(socket);
      });
      socket.on('connect', () => {
        this.#socket = socket;
        socket.write(encodeMessage(this.#hello(this.#askMinor)));
      });
    });
  }

  /**
   * Reports one exit of `vcpu` and resolves with the verdict to apply (the daemon's or the
   * fallback). An exit every daemon would refuse gets the fallback at once and is neither sent
   * nor kept (docs/protocol.md §9, "Check before sending").
   */
  handleExit(report: ExitReport): Promise<VerdictOutcome> {
    const msg = {
      ...report,
      seq: this.#nextSeq(),
      timeNs: BigInt(Date.now()) * 1_000_000n,
      replay: false,
      fallbackAction: 0,
    } as EventMsg;
    const startNs = process.hrtime.bigint();
    const refusal = localRefusal(msg, this.opts.vcpuCount, this.opts.caps, this.#ready ? this.#minor : 0);
    if (refusal !== null) return Promise.resolve(this.#invalid(msg, startNs, refusal));
    // Encoded before anything is committed: an exit with a field no frame can carry (a u64 outside
    // [0, 2^64), …) is refused like the above, and what is kept is known to encode as a replay.
    const frame = encodable(msg);
    if (typeof frame === 'string') return Promise.resolve(this.#invalid(msg, startNs, frame));
    const socket = this.#socket;
    if (!this.#ready || !socket) return Promise.resolve(this.#fallback(msg, startNs));
    return new Promise<VerdictOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(msg.seq);
        resolve(this.#fallback(msg, startNs));
      }, this.opts.deadlineMs);
      this.#pending.set(msg.seq, { resolve, timer, msg, startNs });
      this.stats.sent++;
      socket.write(frame);
    });
  }

  /**
   * Reports the result of applying a verdict (0 or -errno). In a 1.1 session `appliedAction`
   * says what the vCPU got when it was not the verdict's action (e.g. the fallback after a failed
   * injection); without it the report means "the verdict, as sent".
   */
  applied(seq: number, result: number, appliedAction?: number): void {
    if (!this.#ready) return;
    const applied =
      appliedAction !== undefined && this.#minor >= 1
        ? { action: appliedAction, source: APPLIED_SOURCE.FALLBACK }
        : undefined;
    this.#socket?.write(encodeMessage({ type: 'applied', seq, result, ...(applied ? { applied } : {}) }));
  }

  /**
   * Says GOODBYE and stops reconnecting; pending exits get their fallback. `reason` VM_EXITING
   * (2) tells the daemon the VM is gone while this process lives on — what spares a process that
   * serves other VMs from a pending kill of this one (docs/protocol.md §5.1).
   */
  async close(reason: number = GOODBYE_REASON.NORMAL): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const s = this.#socket;
    if (s && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.end(encodeMessage({ type: 'goodbye', reason }));
        setTimeout(() => s.destroy(), 1000).unref();
      });
    }
    this.#failPending();
  }

  #nextSeq(): number {
    const s = this.#seq;
    this.#seq = this.#seq === 0xffffffff ? 1 : this.#seq + 1;
    return s;
  }

  /** An exit no daemon would take: the fallback answers it, and it is counted, not kept. */
  #invalid(msg: EventMsg, startNs: bigint, reason: string): VerdictOutcome {
    const verdict = fallbackVerdict(this.opts.fallback, msg, this.opts.caps);
    this.stats.fallbacks++;
    this.stats.invalidEvents++;
    const outcome: VerdictOutcome = {
      source: 'fallback',
      verdict,
      latencyNs: process.hrtime.bigint() - startNs,
    };
    this.emit('invalid-event', msg, reason);
    this.emit('fallback', msg, outcome);
    return outcome;
  }

  #fallback(msg: EventMsg, startNs: bigint): VerdictOutcome {
    const verdict = fallbackVerdict(this.opts.fallback, msg, this.opts.caps);
    this.stats.fallbacks++;
    // Still connected (a deadline, not a disconnect). 1.0: report it now rather than at the next
    // WELCOME. 1.1: the daemon still decides it; its late VERDICT is answered with APPLIED
    // FALLBACK (§9), and only a lost connection makes it a replay.
    const live = this.#ready && this.#minor >= 1;
    if (this.#replay.keep({ ...msg, replay: true, fallbackAction: verdict.action }, live))
      this.stats.replayDropped++;
    if (this.#ready && this.#minor === 0) queueMicrotask(() => this.#flushReplay());
    const outcome: VerdictOutcome = {
      source: 'fallback',
      verdict,
      latencyNs: process.hrtime.bigint() - startNs,
    };
    this.emit('fallback', msg, outcome);
    return outcome;
  }

  #onMessage(m: Message, handshake: (err?: Error) => void): void {
    if (this.#ready && SESSION_ENDING.has(m.type)) {
      this.#sessionEnded(m);
      return;
    }
    switch (m.type) {
      case 'welcome':
        if (m.version !== PROTOCOL_VERSION || (m.minor ?? 0) !== this.#askMinor) {
          // A daemon must answer with the version asked for, or REJECT VERSION (§10).
          this.emit(
            'protocol-error',
            new VmmError('SEAWALL_VMM_PROTOCOL', `WELCOME for ${m.version}.${m.minor}`),
          );
          this.#socket?.destroy();
          return;
        }
        this.#ready = true;
        this.#refused = false;
        this.#minor = m.minor ?? 0;
        this.#maxBody = m.maxBody ?? 0;
        this.#sessionId = m.sessionId;
        // The handshake is done before anything is written: whatever writing the replays does, a
        // connect() that got its WELCOME has succeeded, and a session lost from here on is a
        // disconnect (#onDisconnect), the only path that schedules a reconnect for it.
        handshake();
        // The backoff starts again once this session proved useful (§9, point 5): at the echo of
        // its replays, at a verdict, or once it has been up as long as the backoff's bound. A
        // WELCOME alone proves nothing: a daemon may end every session right after it.
        this.#awaitingEcho = this.#flushReplay();
        this.#provenTimer = setTimeout(() => this.#proven(), this.opts.reconnect.maxMs);
        this.#provenTimer.unref();
        this.emit('ready', m);
        return;
      case 'reject':
        handshake(
          new VmmError('SEAWALL_VMM_HANDSHAKE', `daemon rejected HELLO: ${m.message}`, {
            wireCode: m.code,
            ...(m.supported ? { supported: m.supported } : {}),
          }),
        );
        return;
      case 'verdict': {
        const p = this.#pending.get(m.seq);
        if (!p) {
          this.#lateVerdict(m);
          return;
        }
        this.#pending.delete(m.seq);
        clearTimeout(p.timer);
        // §5.3: an action this plugin does not know is a protocol error, and so is an INJECT whose
        // image the declared host would refuse or misread (§5.1). The exit gets the fallback (kept,
        // so it is replayed after the reconnect); the connection is made again.
        const refusal = KNOWN_ACTIONS.has(m.action)
          ? verdictRefusal(m, p.msg, this.opts.caps)
          : `unknown action ${m.action}`;
        if (refusal !== null) {
          p.resolve(this.#fallback(p.msg, p.startNs));
          this.emit('protocol-error', new VmmError('SEAWALL_VMM_PROTOCOL', `VERDICT with ${refusal}`));
          this.#socket?.destroy();
          return;
        }
        this.stats.verdicts++;
        this.#proven();
        p.resolve({ source: 'daemon', verdict: m, latencyNs: process.hrtime.bigint() - p.startNs });
        // A VMM terminates the VM on 'kill' within graceMs (the daemon enforces it afterwards).
        if (m.action === ACTION.KILL) this.emit('kill', { seq: m.seq, graceMs: m.graceMs, late: false });
        if (m.flags & VERDICT_FLAG.MIGRATING) this.emit('migrating', { seq: m.seq });
        return;
      }
      case 'error':
        this.emit('daemon-error', m);
        // Before WELCOME it fails the handshake (a 1.0 daemon's answer to a 1.1 HELLO is one).
        handshake(
          new VmmError('SEAWALL_VMM_HANDSHAKE', `daemon refused HELLO: ${m.message}`, { wireCode: m.code }),
        );
        return;
      case 'heartbeat':
        this.#replayAcknowledged(m.nonce);
        return;
      case 'goodbye':
        return;
      default:
        this.emit('protocol-error', new VmmError('SEAWALL_VMM_PROTOCOL', `unexpected ${m.type}`));
    }
  }

  /**
   * A frame after WELCOME that ends the session (§3 rules 6 and 7): ERROR, GOODBYE, or a REJECT or
   * second WELCOME no daemon sends. The connection is dropped at once, as a disconnect: nothing
   * read after it (a VERDICT behind an ERROR) is acted on.
   */
  #sessionEnded(m: Message): void {
    if (m.type === 'error') {
      this.emit('daemon-error', m);
      // Before its replay echo, that costs a replay (#onDisconnect).
      this.#refused = true;
    } else if (m.type !== 'goodbye')
      this.emit('protocol-error', new VmmError('SEAWALL_VMM_PROTOCOL', `${m.type} after WELCOME`));
    this.#socket?.destroy();
  }

  /**
   * Reports the kept events, then a HEARTBEAT: the daemon echoes it only after everything before
   * it is stored, so the events are forgotten only then. A connection lost in between puts them
   * back; the daemon recognises any it had already stored (same VM, seq and time). True when a
   * batch was written.
   */
  #flushReplay(): boolean {
    if (!this.#socket) return false;
    // Kept while the session's version was unknown: what this session would refuse goes now.
    const refusal = (m: EventMsg) => localRefusal(m, this.opts.vcpuCount, this.opts.caps, this.#minor);
    for (const { event, reason } of this.#replay.discard(refusal)) {
      this.stats.invalidEvents++;
      this.emit('invalid-event', event, reason);
    }
    const batch = this.#replay.takeBatch();
    if (!batch) return false;
    const { nonce, events } = batch;
    this.#socket.write(
      Buffer.concat([...events.map((m) => encodeMessage(m)), encodeMessage({ type: 'heartbeat', nonce })]),
    );
    return true;
  }

  /**
   * A VERDICT for an exit the fallback already answered (docs/protocol.md §9, "Drop late
   * verdicts"). The daemon decided and stored it, so it is not reported: taken out of the kept
   * events, or out of the replays awaiting their echo — those the daemon finds already stored and
   * skips, and they are counted here as late, not as replayed. A late KILL is still handed to the
   * VMM ('kill' with `late: true`): the daemon enforces it once its grace runs out, whatever the
   * vCPU got, so the grace is the VMM's to use (§3, rule 4).
   */
  #lateVerdict(m: VerdictMsg): void {
    const seq = m.seq;
    if (m.action === ACTION.KILL) this.emit('kill', { seq, graceMs: m.graceMs, late: true });
    const late = this.#replay.forget(seq);
    // Not kept at all: dropped past maxReplay (counted there) or a seq never sent.
    if (!late) return;
    this.stats.lateVerdicts++;
    // 1.1: the daemon is told the guest got the fallback, so its record says so (§4.6).
    if (this.#minor >= 1) {
      const applied = { action: late.fallbackAction, source: APPLIED_SOURCE.FALLBACK };
      this.#socket?.write(encodeMessage({ type: 'applied', seq, result: 0, applied }));
    }
    this.emit('late-verdict', seq);
  }

  #replayAcknowledged(nonce: bigint): void {
    const n = this.#replay.acknowledged(nonce);
    if (n === null) return;
    if (this.#awaitingEcho) {
      // The session's replays are stored: it proved useful, the backoff starts again.
      this.#awaitingEcho = false;
      this.#proven();
    }
    if (n > 0) {
      this.stats.replayed += n;
      this.emit('replayed', n);
    }
    this.#flushReplay();
  }

  /** The current session proved useful: the next reconnect starts from the first step again. */
  #proven(): void {
    if (this.#provenTimer) clearTimeout(this.#provenTimer);
    this.#provenTimer = null;
    this.#backoff = this.opts.reconnect.initialMs;
  }

  #failPending(): void {
    for (const [seq, p] of this.#pending) {
      this.#pending.delete(seq);
      clearTimeout(p.timer);
      p.resolve(this.#fallback(p.msg, p.startNs));
    }
  }

  #onDisconnect(socket: Socket): void {
    if (this.#socket !== socket) return;
    const wasReady = this.#ready;
    // Ended by the daemon's ERROR before the echo of the replays written at WELCOME: the daemon
    // stores replays in order and stops at one it refuses, so the oldest of them is stored already
    // or is the refused one. It is dropped, one per such session, so that a replay the daemon
    // always refuses is not replayed for ever (§9, point 6). A connection that merely drops
    // costs nothing.
    const refused = wasReady && this.#refused && this.#awaitingEcho;
    this.#ready = false;
    this.#refused = false;
    this.#awaitingEcho = false;
    this.#socket = null;
    if (this.#provenTimer) clearTimeout(this.#provenTimer);
    this.#provenTimer = null;
    // Not acknowledged: reported again after reconnecting (the daemon drops any it stored).
    const { refused: dropped, overflow } = this.#replay.disconnected(refused);
    this.stats.replayDropped += overflow;
    if (dropped) {
      this.stats.replaysRefused++;
      this.emit('replay-refused', dropped);
    }
    this.#failPending();
    if (this.#closed || !wasReady) return;
    this.emit('disconnected');
    this.#scheduleReconnect();
  }

  /** One reconnect at a time: a second failure reported while one is pending schedules nothing. */
  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== null) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.opts.reconnect.maxMs);
    this.emit('reconnecting', delay);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      // The VMM called connect() itself meanwhile, and that session is up.
      if (this.#ready) return;
      this.stats.reconnects++;
      this.connect().catch(() => this.#scheduleReconnect());
    }, delay);
    this.#reconnectTimer.unref();
  }
}
