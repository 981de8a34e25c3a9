/**
 * One plugin connection: a small state machine (awaiting HELLO → active → closed) around the
 * frame parser. A protocol violation ends this connection with an ERROR frame; nothing a peer
 * sends can throw out of here. Backpressure is explicit: when replies pile up because the peer
 * is not reading, the socket stops being read until they drain.
 *
 * Longer than 350 lines: the state machine, the holds that pause reading and the dispatch of each
 * frame share the private state that keeps a session's frames in order; apart, each part would
 * have to reach into the others'.
 */
import type { Socket } from 'node:net';
import type { SessionInfo, SessionOutcome } from '../events/index.js';
import { type Pidfd, peerHungUp } from '../kvm/index.js';
import {
  type AppliedMsg,
  answerTo,
  DAEMON_ACCEPTS,
  type EventMsg,
  encodeMessage,
  FrameParser,
  GOODBYE_REASON,
  type HelloMsg,
  isProtocolError,
  type Message,
  ProtocolError,
} from '../protocol/index.js';

export interface SessionHost {
  /** Accepts a HELLO and returns the session's info, or throws ProtocolError (REJECT). */
  admit(session: PluginSession, hello: HelloMsg): SessionInfo;
  /** Hands an event to the pipeline. May throw ProtocolError for bad field values. */
  submit(session: PluginSession, msg: EventMsg, receivedNs: bigint): void;
  applied(session: PluginSession, msg: AppliedMsg): void;
  /** Writes `frame` once everything received before it is decided and stored. */
  echo(session: PluginSession, frame: Buffer): void;
  /**
   * The session is closing: once everything received before is decided, stored and written, the
   * host calls `end()` on it, which writes the final frame.
   */
  closing(session: PluginSession): void;
  protocolError(session: PluginSession, err: ProtocolError): void;
  closed(session: PluginSession, outcome: SessionOutcome, detail: string | null): void;
  readonly maxBody: number;
  readonly writeHighWater: number;
  readonly maxInFlight: number;
  /** A connection silent before HELLO this long is dropped (bounds idle pre-HELLO connections). */
  readonly helloTimeoutMs: number;
  /** A frame begun and not completed within this long ends the session (bounds dripping peers). */
  readonly frameTimeoutMs: number;
}

/**
 * Frames a session handles before it gives the event loop a turn: the rest of what it sent, read
 * or not, waits for the next turn, so one peer's burst cannot hold up every other session's
 * verdicts. A read of 64 KiB holds 1,024 events or 4,096 APPLIED results, and one turn may read
 * a socket up to 32 times: 131,072 APPLIED results handled at once.
 */
export const FRAMES_PER_TURN = 1024;

/** Why reading from a session's socket is paused; reading resumes when no reason is left. */
const HOLD_WRITE_BACKLOG = 1;
const HOLD_IN_FLIGHT = 2;
const HOLD_REPLAYS = 4;
const HOLD_TURN = 8;
const HOLD_STORE = 16;

export type SessionState = 'hello' | 'active' | 'closing' | 'closed';

export class PluginSession {
  readonly socket: Socket;
  readonly peer: { pid: number; uid: number; gid: number } | null;
  info: SessionInfo | null = null;
  #state: SessionState = 'hello';
  readonly #host: SessionHost;
  readonly #parser: FrameParser;
  #outbox: Buffer[] = [];
  /** The frame `end()` writes last (REJECT, ERROR or GOODBYE), set by `close()`. */
  #final: Message | null = null;
  /** True once the socket was ended: nothing more can be written. */
  #ended = false;
  #outcome: SessionOutcome = 'disconnect';
  #detail: string | null = null;
  /** HOLD_* bits. */
  #holds = 0;
  /** A turn is scheduled to parse what the parser held back (see #release). */
  #resuming = false;
  /** Frames handled since this session last gave the event loop a turn (FRAMES_PER_TURN). */
  #frames = 0;
  /** Events received on this session so far: the next event's order. */
  #events = 0;
  /** Pending until HELLO is admitted. */
  #helloTimer: NodeJS.Timeout | null;
  /** Running while a frame is partly received. */
  #frameTimer: NodeJS.Timeout | null = null;
  /**
   * Seqs of events decided but whose VERDICT is not written yet. The plugin cannot have seen
   * those verdicts, so a second event with one of these seqs is two unanswered events with one
   * seq (§4.4): the verdicts could not be told apart.
   */
  #unanswered = new Set<number>();

  /** The peer's pidfd until HELLO hands it to the session's info (then owned by kill enforcement). */
  #pidfd: Pidfd | null;
  /** Ended because the connecting process exited while another held the connection (`endHandedOn`). */
  #handedOn = false;

  constructor(socket: Socket, host: SessionHost, peer: PluginSession['peer'], pidfd: Pidfd | null = null) {
    this.socket = socket;
    this.peer = peer;
    this.#pidfd = pidfd;
    this.#host = host;
    this.#parser = new FrameParser((m) => this.#onFrame(m), {
      accept: DAEMON_ACCEPTS,
      maxBody: host.maxBody,
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#onDrain());
    socket.on('error', () => {}); // 'close' follows; errors on a peer's socket are the peer's
    socket.on('close', () => this.#onClose());
    this.#helloTimer = setTimeout(
      () =>
        this.#fail(
          new ProtocolError('NOT_HELLO_FIRST', `no HELLO within ${host.helloTimeoutMs} ms of connecting`),
        ),
      host.helloTimeoutMs,
    );
    this.#helloTimer.unref();
  }

  /** The process that connected has exited, as its pidfd taken at accept says; false when unknown. */
  peerExited(): boolean {
    return exitedNow(this.#pidfd);
  }

  /** Hands the pidfd taken at accept over (once); null when none could be had. */
  takePidfd(): Pidfd | null {
    const fd = this.#pidfd;
    this.#pidfd = null;
    return fd;
  }

  get state(): SessionState {
    return this.#state;
  }

  get open(): boolean {
    return this.#state === 'active' || this.#state === 'hello';
  }

  /**
   * Queues a frame; written by flush() (the pipeline batches replies per tick). Past maxInFlight
   * unwritten verdicts the socket stops being read until the tick's flush.
   */
  queue(frame: Buffer): void {
    if (this.#state === 'closed' || this.#ended) return;
    this.#outbox.push(frame);
    if (this.#outbox.length >= this.#host.maxInFlight) this.#hold(HOLD_IN_FLIGHT);
  }

  /** Replays of this session waiting in the pipeline's replay queue, and the echoes behind them. */
  replayBacklog = 0;

  /** Stops reading while this session's replay backlog is over its bound (pipeline.ts). */
  holdReplays(on: boolean): void {
    if (on) this.#hold(HOLD_REPLAYS);
    else this.#release(HOLD_REPLAYS);
  }

  /**
   * Stops reading while this session has the most events written ahead and not yet stored, past
   * the write-ahead's bound (store/write-ahead.ts `pressure`): its flood waits, other VMs do not.
   */
  holdForStore(on: boolean): void {
    if (on) this.#hold(HOLD_STORE);
    else this.#release(HOLD_STORE);
  }

  get heldForStore(): boolean {
    return (this.#holds & HOLD_STORE) !== 0;
  }

  /** The order of the next event in this session (1, 2, …): with the session, its identity. */
  nextOrd(): number {
    return ++this.#events;
  }

  #hold(bit: number): void {
    if (this.#holds === 0 && this.open) {
      this.socket.pause();
      // Not read, a frame cannot complete: the daemon's own pause is not the peer dripping.
      this.#stopFrameTimer();
    }
    // A replay or store bound holds back the rest of the read too (~1,000 frames in 64 KiB), as
    // does a turn given up.
    if (bit === HOLD_REPLAYS || bit === HOLD_TURN || bit === HOLD_STORE) this.#parser.stop();
    this.#holds |= bit;
  }

  #release(bit: number): void {
    if (!(this.#holds & bit)) return;
    this.#holds &= ~bit;
    if (!this.#parser.stopped) this.#read();
    else if (this.#holds === 0 && !this.#resuming) {
      // What the parser held back is parsed on a turn of its own: releases come inside a tick.
      this.#resuming = true;
      setImmediate(() => {
        this.#resuming = false;
        this.#resume();
      });
    }
  }

  /** Parses what the parser held back, then reads the socket again, unless a hold is left. */
  #resume(): void {
    if (this.#holds !== 0 || !this.open) return;
    if (this.#parse(() => this.#parser.resume())) this.#read();
  }

  /**
   * FRAMES_PER_TURN frames handled: the rest waits for the next turn, in which this session
   * goes on where it stopped whether or not more bytes arrive.
   */
  #onFrame(m: Message): void {
    // A whole frame clears the clock: the next one's starts when a read ends part-way into it.
    this.#stopFrameTimer();
    this.#onMessage(m);
    if (++this.#frames < FRAMES_PER_TURN || !this.open) return;
    this.#frames = 0;
    this.#hold(HOLD_TURN);
    setImmediate(() => {
      this.#holds &= ~HOLD_TURN;
      // Another hold left: its release resumes (the parser stays stopped until then).
      this.#resume();
    });
  }

  /** Reads the socket again unless a hold is left. */
  #read(): void {
    if (this.#holds !== 0 || !this.open) return;
    this.socket.resume();
    if (!this.#parser.idle) this.#startFrameTimer();
  }

  /** True while reading is paused by a bound (for status and tests). */
  get held(): boolean {
    return this.#holds !== 0;
  }

  /**
   * Whether the peer has closed its end while a bound held this session: a socket not read sees
   * no end of file, and the session would hold its VM id for as long as the bound holds it.
   */
  hungUpWhileHeld(): boolean {
    return this.#holds !== 0 && this.open && this.#peerHungUp() === true;
  }

  /**
   * Whether some process still holds the peer's end while the session is open: the process that
   * connected, or one it handed the connection to. The kernel hangs the socket up as soon as the
   * last holder lets go, before the daemon reads its end of file. Still true after the session
   * ended for that reason (`endHandedOn`): the holder serves the VM on, from a session of its own.
   */
  peerHolds(): boolean {
    return this.#handedOn || (this.open && this.#peerHungUp() === false);
  }

  /** The kernel's word on the peer's end; null when the socket's fd cannot be looked at. */
  #peerHungUp(): boolean | null {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    try {
      return fd >= 0 ? peerHungUp(fd) : null;
    } catch {
      return null;
    }
  }

  /** Writes queued frames in one write and applies backpressure. */
  flush(): void {
    this.#unanswered.clear();
    if (this.#outbox.length === 0 || this.socket.destroyed) {
      this.#outbox = [];
      this.#release(HOLD_IN_FLIGHT);
      return;
    }
    const data = this.#outbox.length === 1 ? (this.#outbox[0] as Buffer) : Buffer.concat(this.#outbox);
    this.#outbox = [];
    this.socket.write(data);
    // Held only while the socket owes a 'drain', the one event that releases the hold: Node emits
    // it only after a write() returned false (writableNeedDrain), at the socket's own high-water
    // mark (16 KiB in Node 20). Held on writeHighWater alone, a value below that mark would pause
    // the session for good after one read stall of its plugin.
    const backlog = this.socket.writableLength > this.#host.writeHighWater;
    if (backlog && this.socket.writableNeedDrain) this.#hold(HOLD_WRITE_BACKLOG);
    this.#release(HOLD_IN_FLIGHT);
  }

  /** Closes at once, without a final frame: its peer is gone (`hungUpWhileHeld`). */
  drop(detail: string): void {
    this.close(null, 'disconnect', detail);
    this.socket.destroy();
  }

  /**
   * Stops reading and closes with a final frame (REJECT, ERROR or GOODBYE). The frame is written by
   * `end()`, which the host calls once everything received before is decided, stored and written:
   * a verdict never goes out before its event is durable, and a GOODBYE follows the replays before
   * it (docs/protocol.md §3).
   */
  close(final: Message | null, outcome: SessionOutcome, detail: string | null): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.#clearTimers();
    this.#outcome = outcome;
    this.#detail = detail;
    this.#final = final;
    this.socket.pause();
    this.#host.closing(this);
  }

  /** Writes what is queued and the final frame, and ends the socket (see `close()`). */
  end(): void {
    if (this.#ended) return;
    this.flush();
    this.#ended = true;
    if (this.socket.destroyed) return;
    if (this.#final) this.socket.end(encodeMessage(this.#final));
    else this.socket.end();
    // A peer that never reads must not keep the connection: give the final frame a moment, then drop.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  #onData(chunk: Buffer): void {
    if (!this.open || !this.#parse(() => this.#parser.push(chunk))) return;
    // A frame left incomplete must complete within the bound, while it is being read.
    if (this.#parser.idle) this.#stopFrameTimer();
    else if (!this.#frameTimer && this.open && this.#holds === 0) this.#startFrameTimer();
  }

  /**
   * Feeds the parser; false if it threw, which fails the session only while open: bytes behind a
   * GOODBYE in the same read are ignored, never a protocol error of a session that closed normally.
   */
  #parse(feed: () => void): boolean {
    try {
      feed();
      return true;
    } catch (err) {
      if (this.open) this.#fail(err);
      return false;
    }
  }

  #startFrameTimer(): void {
    this.#stopFrameTimer();
    this.#frameTimer = setTimeout(
      () =>
        this.#fail(
          new ProtocolError(
            'BAD_FRAME',
            `a frame stayed incomplete for ${this.#host.frameTimeoutMs} ms (${this.#parser.buffered} bytes held)`,
          ),
        ),
      this.#host.frameTimeoutMs,
    );
    this.#frameTimer.unref();
  }

  #stopFrameTimer(): void {
    if (this.#frameTimer) clearTimeout(this.#frameTimer);
    this.#frameTimer = null;
  }

  #clearTimers(): void {
    if (this.#helloTimer) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    this.#stopFrameTimer();
  }

  /**
   * A session is the connecting process's (docs/protocol.md §1.2): kills go to it. When it has
   * exited while another process still holds the connection (handed on by fork or SCM_RIGHTS), the
   * session ends with GOODBYE NORMAL, and whoever holds it connects again under its own
   * credentials. Asked at HELLO, and by a kill that finds the process gone (SessionInfo): a watch
   * on every session's pidfd would cost each session a poll handle of several KiB. A VMM's own exit
   * lets go of the connection before its pidfd turns readable: its end of file closes the session
   * as ever. Deferred a turn, so that a kill asking sees the session still served first.
   */
  endHandedOn(): void {
    setImmediate(() => {
      if (this.#state !== 'active' || !exitedNow(this.info?.peerPidfd ?? null) || !this.peerHolds()) return;
      this.#handedOn = true;
      const pid = this.peer?.pid ?? 0;
      this.close(
        { type: 'goodbye', reason: GOODBYE_REASON.NORMAL },
        'disconnect',
        `the connecting process (pid ${pid}) exited while another process holds its connection`,
      );
    });
  }

  #onDrain(): void {
    this.#release(HOLD_WRITE_BACKLOG);
  }

  #fail(err: unknown): void {
    const perr = isProtocolError(err)
      ? err
      : new ProtocolError('INTERNAL', `internal error handling this session: ${(err as Error).message}`);
    this.#host.protocolError(this, perr);
    this.close(answerTo(perr), 'protocol_error', perr.message);
  }

  #onMessage(m: Message): void {
    if (!this.open) return;
    if (this.#state === 'hello') {
      if (m.type !== 'hello') {
        throw new ProtocolError('NOT_HELLO_FIRST', `${m.type} before HELLO`);
      }
      this.info = this.#host.admit(this, m);
      this.#parser.setMinor(this.info.minor);
      this.#parser.helloDone();
      this.#state = 'active';
      // Gone before its HELLO was read: the connection was handed on before the session began.
      if (exitedNow(this.info.peerPidfd ?? null)) this.endHandedOn();
      if (this.#helloTimer) clearTimeout(this.#helloTimer);
      this.#helloTimer = null;
      return;
    }
    // A second HELLO never comes here: the parser answers it DUPLICATE_HELLO from its header
    // (FrameParser.helloDone), before its version or fields are read.
    switch (m.type) {
      case 'sea':
      case 'nisv':
      case 'mmio':
      case 'sigbus':
        if (!m.replay) {
          if (this.#unanswered.has(m.seq))
            throw new ProtocolError('BAD_FIELD', `seq ${m.seq} is already in use by an unanswered event`);
          this.#unanswered.add(m.seq);
        }
        this.#host.submit(this, m, process.hrtime.bigint());
        return;
      case 'applied':
        this.#host.applied(this, m);
        return;
      case 'heartbeat':
        // Echoed after the current batch is stored, so the echo acknowledges what came before it.
        this.#host.echo(this, encodeMessage(m));
        return;
      case 'goodbye':
        // VM_EXITING is how a plugin says the VM is gone while its process lives on (§5.1 KILL).
        this.close(
          { type: 'goodbye', reason: GOODBYE_REASON.NORMAL },
          m.reason === GOODBYE_REASON.VM_EXITING ? 'vm_exiting' : 'normal',
          null,
        );
        return;
      default:
        // The parser admits only DAEMON_ACCEPTS; anything else here is a bug in that table.
        throw new ProtocolError('UNEXPECTED_TYPE', `${m.type} is not sent to the daemon`);
    }
  }

  #onClose(): void {
    this.#clearTimers();
    // Never admitted: nobody else took the pidfd.
    this.#pidfd?.close();
    this.#pidfd = null;
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#outbox = [];
    this.#host.closed(this, this.#outcome, this.#detail);
  }
}

/** The process a pidfd names has exited, as far as the kernel says now; false when unknown. */
function exitedNow(pidfd: Pidfd | null): boolean {
  try {
    return pidfd?.exited() ?? false;
  } catch {
    return false;
  }
}
