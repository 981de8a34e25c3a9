/**
 * The reference plugin in TypeScript: what a VMM links to talk to seawall. It connects, says
 * HELLO, sends each exit and waits for the verdict with a deadline. When the deadline passes or
 * the daemon goes away, the configured local fallback answers at once and the event is kept; once
 * reconnected (with exponential backoff) the kept events are reported as REPLAY events, so the
 * daemon's counts stay true. A C or Rust plugin does the same from docs/protocol.md.
 *
 * Longer than 350 lines: the reference client is one state machine (connect, handshake, deadline,
 * fallback, replay) that VMM authors read top to bottom.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { encodeInjection } from '../kvm/index.js';
import {
  ACTION,
  APPLIED_SOURCE,
  type EventMsg,
  encodeMessage,
  FrameParser,
  GOODBYE_REASON,
  type Message,
  PLUGIN_ACCEPTS,
  PROTOCOL_MINOR,
  PROTOCOL_VERSION,
  VERDICT_FLAG,
  type VerdictMsg,
  WIRE_ERROR,
} from '../protocol/index.js';
import { VmmError } from './errors.js';

/** What the plugin does on its own when no verdict comes in time. */
export type FallbackPolicy = 'inject' | 'kill' | 'resume';

/** An exit as the VMM saw it; seq, time and flags are the client's to fill. */
export type ExitReport = DistributiveOmit<EventMsg, 'seq' | 'timeNs' | 'replay' | 'fallbackAction'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface PluginClientOptions {
  socket: string;
  vmId: string;
  labels?: Record<string, string>;
  vcpuCount: number;
  /** HELLO capability bits (protocol CAP.*). */
  caps: number;
  extAbtEsrCap?: number;
  vmmPid?: number;
  /** How long a stalled vCPU waits for the daemon before the fallback answers. */
  deadlineMs?: number;
  fallback?: FallbackPolicy;
  /** Bound on kept fallback events; past it the oldest is dropped and counted. */
  maxReplay?: number;
  reconnect?: { initialMs?: number; maxMs?: number };
  /** How long connect() waits for WELCOME (a socket-activated daemon may be starting). */
  helloTimeoutMs?: number;
  /**
   * The highest minor version to ask for: 1 (protocol 1.1, the default) or 0 (1.0 compatibility).
   * A daemon that speaks less says so, and the client asks again with what it speaks.
   */
  minor?: number;
}

export interface VerdictOutcome {
  source: 'daemon' | 'fallback';
  verdict: Omit<VerdictMsg, 'type'>;
  latencyNs: bigint;
}

/**
 * What became of the exits. Every fallback ends exactly one way, so that
 * `fallbacks = replayed + lateVerdicts + replayDropped + replayQueue`.
 */
export interface PluginClientStats {
  sent: number;
  verdicts: number;
  fallbacks: number;
  /** Fallback-handled events reported, and acknowledged by the daemon's HEARTBEAT echo. */
  replayed: number;
  /**
   * Fallback-handled events whose VERDICT came after all: the guest got the fallback, and the
   * daemon, which stores an event before answering it, recorded and counted it as decided.
   */
  lateVerdicts: number;
  /** Fallback-handled events dropped past `maxReplay`, never reported. */
  replayDropped: number;
  reconnects: number;
}

interface Pending {
  resolve: (o: VerdictOutcome) => void;
  timer: NodeJS.Timeout;
  msg: EventMsg;
  startNs: bigint;
}

const MERGED_DABT = encodeInjection({ kind: 'data' }, { abi: 'merged', ras: false });
const ZERO_EVENTS = new Uint8Array(64);

/** The verdict the plugin applies by itself (docs/protocol.md "Fallback"). */
export function fallbackVerdict(policy: FallbackPolicy, msg: EventMsg): Omit<VerdictMsg, 'type'> {
  const base = { seq: msg.seq, flags: 0, graceMs: 0, esr: 0n, vcpuEvents: ZERO_EVENTS };
  if (policy === 'kill') return { ...base, action: ACTION.KILL };
  // KVM's ext_dabt_pending is defined only after an abort exit; a SIGBUS gets nothing from KVM.
  if (policy === 'inject' && msg.type !== 'sigbus')
    return { ...base, action: ACTION.INJECT, vcpuEvents: MERGED_DABT };
  return { ...base, action: ACTION.RESUME };
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
    reconnects: 0,
  };
  #socket: Socket | null = null;
  #ready = false;
  #closed = false;
  #seq = 1;
  readonly #pending = new Map<number, Pending>();
  #replay: EventMsg[] = [];
  /**
   * 1.1: seqs of kept events that were sent on the current connection and timed out there. The
   * daemon still decides them, so they are not replayed on it (§9); a disconnect makes them
   * ordinary kept events.
   */
  readonly #liveKept = new Set<number>();
  /** Replays written but not yet acknowledged by the echo of the HEARTBEAT sent after them. */
  #replaySent: { nonce: bigint; events: EventMsg[] } | null = null;
  #nonce = 1n;
  #backoff: number;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #sessionId: bigint | null = null;
  /** The minor version to ask for next; lowered when a daemon speaks less. */
  #askMinor: number;
  /** The minor version of the current session (its WELCOME's). */
  #minor = 0;
  #maxBody = 0;

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
    this.#askMinor = this.opts.minor;
    this.#backoff = this.opts.reconnect.initialMs;
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
    return this.#replay.length + (this.#replaySent?.events.length ?? 0);
  }

  /**
   * Connects and completes the handshake; rejects on REJECT, refusal or timeout. Version
   * negotiation (§10): a REJECT VERSION naming a lower 1.x, or the ERROR BAD_FIELD with which a 1.0
   * daemon answers a 1.1 HELLO, makes it ask once more with the version the daemon speaks.
   */
  async connect(): Promise<void> {
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
      const parser = new FrameParser((m) => this.#onMessage(m, done), { accept: PLUGIN_ACCEPTS });
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
        socket.write(
          encodeMessage({
            type: 'hello',
            version: PROTOCOL_VERSION,
            minor: this.#askMinor,
            caps: this.opts.caps,
            vmmPid: this.opts.vmmPid,
            vcpuCount: this.opts.vcpuCount,
            extAbtEsrCap: this.opts.extAbtEsrCap,
            vmId: this.opts.vmId,
            labels: this.opts.labels,
          }),
        );
      });
    });
  }

  /** Reports one exit of `vcpu` and resolves with the verdict to apply (the daemon's or the fallback). */
  handleExit(report: ExitReport): Promise<VerdictOutcome> {
    const msg = {
      ...report,
      seq: this.#nextSeq(),
      timeNs: BigInt(Date.now()) * 1_000_000n,
      replay: false,
      fallbackAction: 0,
    } as EventMsg;
    const startNs = process.hrtime.bigint();
    if (!this.#ready || !this.#socket) return Promise.resolve(this.#fallback(msg, startNs));
    return new Promise<VerdictOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(msg.seq);
        resolve(this.#fallback(msg, startNs));
      }, this.opts.deadlineMs);
      this.#pending.set(msg.seq, { resolve, timer, msg, startNs });
      this.stats.sent++;
      this.#socket?.write(encodeMessage(msg));
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

  #fallback(msg: EventMsg, startNs: bigint): VerdictOutcome {
    const verdict = fallbackVerdict(this.opts.fallback, msg);
    this.stats.fallbacks++;
    this.#replay.push({ ...msg, replay: true, fallbackAction: verdict.action });
    if (this.#replay.length > this.opts.maxReplay) {
      this.#replay.shift();
      this.stats.replayDropped++;
    }
    // Still connected (a deadline, not a disconnect). 1.0: report it now rather than at the next
    // WELCOME. 1.1: the daemon still decides it; its late VERDICT is answered with APPLIED
    // FALLBACK (§9), and only a lost connection makes it a replay.
    if (this.#ready && this.#minor === 0) queueMicrotask(() => this.#flushReplay());
    else if (this.#ready) this.#liveKept.add(msg.seq);
    const outcome: VerdictOutcome = {
      source: 'fallback',
      verdict,
      latencyNs: process.hrtime.bigint() - startNs,
    };
    this.emit('fallback', msg, outcome);
    return outcome;
  }

  #onMessage(m: Message, handshake: (err?: Error) => void): void {
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
        this.#minor = m.minor ?? 0;
        this.#maxBody = m.maxBody ?? 0;
        this.#sessionId = m.sessionId;
        this.#backoff = this.opts.reconnect.initialMs;
        this.#flushReplay();
        handshake();
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
          this.#lateVerdict(m.seq);
          return;
        }
        this.#pending.delete(m.seq);
        clearTimeout(p.timer);
        this.stats.verdicts++;
        p.resolve({ source: 'daemon', verdict: m, latencyNs: process.hrtime.bigint() - p.startNs });
        // A VMM terminates the VM on 'kill' within graceMs (the daemon enforces it afterwards).
        if (m.action === ACTION.KILL) this.emit('kill', { seq: m.seq, graceMs: m.graceMs });
        if (m.flags & VERDICT_FLAG.MIGRATING) this.emit('migrating', { seq: m.seq });
        return;
      }
      case 'error':
        this.emit('daemon-error', m);
        // Before WELCOME an ERROR fails the handshake (a 1.0 daemon's answer to a 1.1 HELLO is one).
        if (!this.#ready)
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
   * Reports the kept events, then a HEARTBEAT: the daemon echoes it only after everything before
   * it is stored, so the events are forgotten only then. A connection lost in between puts them
   * back; the daemon recognises any it had already stored (same VM, seq and time).
   */
  #flushReplay(): void {
    if (this.#replay.length === 0 || !this.#socket || this.#replaySent) return;
    const events = this.#replay.filter((m) => !this.#liveKept.has(m.seq));
    if (events.length === 0) return;
    this.#replay = this.#replay.filter((m) => this.#liveKept.has(m.seq));
    const nonce = this.#nonce++;
    this.#replaySent = { nonce, events };
    this.#socket.write(
      Buffer.concat([...events.map((m) => encodeMessage(m)), encodeMessage({ type: 'heartbeat', nonce })]),
    );
  }

  /**
   * A VERDICT for an exit the fallback already answered (docs/protocol.md §9, "Drop late
   * verdicts"). The daemon decided and stored it, so it is not reported: taken out of the kept
   * events, or out of the replays awaiting their echo — those the daemon finds already stored and
   * skips, and they are counted here as late, not as replayed.
   */
  #lateVerdict(seq: number): void {
    let late: EventMsg | undefined;
    const kept = this.#replay.findIndex((r) => r.seq === seq);
    if (kept >= 0) [late] = this.#replay.splice(kept, 1);
    else {
      const sent = this.#replaySent?.events;
      const i = sent ? sent.findIndex((r) => r.seq === seq) : -1;
      // Not kept at all: dropped past maxReplay (counted there) or a seq never sent.
      if (!sent || i < 0) return;
      [late] = sent.splice(i, 1);
    }
    this.#liveKept.delete(seq);
    this.stats.lateVerdicts++;
    // 1.1: the daemon is told the guest got the fallback, so its record says so (§4.6).
    if (this.#minor >= 1 && late) {
      const applied = { action: late.fallbackAction, source: APPLIED_SOURCE.FALLBACK };
      this.#socket?.write(encodeMessage({ type: 'applied', seq, result: 0, applied }));
    }
    this.emit('late-verdict', seq);
  }

  #replayAcknowledged(nonce: bigint): void {
    const sent = this.#replaySent;
    if (!sent || sent.nonce !== nonce) return;
    this.#replaySent = null;
    this.stats.replayed += sent.events.length;
    this.emit('replayed', sent.events.length);
    this.#flushReplay();
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
    this.#ready = false;
    this.#socket = null;
    this.#liveKept.clear();
    if (this.#replaySent) {
      // Not acknowledged: report them again after reconnecting (the daemon drops any it stored).
      this.#replay = [...this.#replaySent.events, ...this.#replay];
      this.#replaySent = null;
    }
    this.#failPending();
    if (this.#closed || !wasReady) return;
    this.emit('disconnected');
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.opts.reconnect.maxMs);
    this.#reconnectTimer = setTimeout(() => {
      this.stats.reconnects++;
      this.connect().catch(() => this.#scheduleReconnect());
    }, delay);
    this.#reconnectTimer.unref();
  }
}
