/**
 * The verdict path: event → typed event → decision → verdict bytes, batched per event-loop tick.
 * Within a tick every decoded event is decided at once; at the end of the tick the batch goes to
 * the durable sinks (the store, in one transaction), then every verdict is written — one write per
 * session — and only then do metrics and logs see it. Nothing slow runs between receive and write.
 */

import type { EventBus, EventRecord, SessionInfo } from '../events/index.js';
import type { KvmExit, NonAbortExit } from '../kvm/index.js';
import type { Decision, DecisionProvider, PolicyEvent } from '../policies/index.js';
import { type EventMsg, encodeVerdict, isProtocolError, WIRE_ERROR } from '../protocol/index.js';
import { crossCheck } from './kernel-crosscheck.js';
import { type QueuedEntry, ReplayQueues } from './replay-queues.js';
import { notAbortDecision, safeDecision } from './safe-decision.js';
import type { PluginSession } from './session.js';
import { typeEvent } from './typed-event.js';
import { buildVerdict, exitHasVa } from './verdict.js';

export interface PipelineOptions {
  /** The policy in force; read once per event, so each event is decided by exactly one version. */
  policy: () => DecisionProvider;
  bus: EventBus;
  /** Records an event the policy did not decide (a replayed fallback) in the rate/repeat state. */
  observe?: (event: PolicyEvent) => void;
  /**
   * The exit record in the kernel's kvm_run page of an attached vCPU, `not-abort` when its last exit
   * is not an abort exit, or null when the vCPU is not attached (or the page cannot be read). When
   * present, the plugin's copy is cross-checked.
   */
  kernelExit?: (session: SessionInfo, vcpu: number) => KvmExit | NonAbortExit | null;
  /** Reports a policy or verdict failure that the safe decision covered. */
  onDecideError?: (err: unknown, record: Pick<EventRecord, 'session' | 'event'>) => void;
  now?: () => number;
}

/**
 * Replays (events a plugin handled by fallback, reported on reconnect) need no verdict, so they
 * wait in a queue per session and at most this many join each batch, taken from the sessions in
 * turn: a flood of 30,000 of them costs every batch a bounded slice of work (~2 ms) instead of one
 * batch seconds of it, other VMs' verdicts go out in between, and another VM's replays wait for
 * one replay per flooding session, not for the flood. A session's heartbeat echo, and its final
 * frame when it closes, wait behind its own queued replays, so they acknowledge everything before
 * them. Every replay received is decided, even when its session has ended meanwhile.
 */
export const REPLAYS_PER_BATCH = 16;
/**
 * Replays of one session queued at most, with the heartbeat echoes behind them; past it that
 * session's socket is not read. Above what a plugin keeps (vmm/plugin-client.ts keeps 4,096), so
 * that only a peer flooding beyond it waits.
 */
export const MAX_REPLAY_BACKLOG = 16_384;
/**
 * Replays queued over all sessions past which each session is held to its share: a session that
 * sends one while it has its even share of this bound queued or more (the bound over the sessions
 * with anything queued: 13,108 each when five have) is not read until it is below its share again
 * or the queues are below the bound. Those flooding are held, not whichever session sends next:
 * a VM reconnecting with the 4,096 replays a plugin keeps is read on beside up to 14 sessions that
 * fill the queues, and its live events, parsed behind its replays, do not wait for theirs.
 */
export const REPLAY_SHARE_BOUND = 65_536;
/**
 * Replays queued at most over all sessions; past it a session that sends one is not read until
 * the queues are below it, whatever its share. It bounds what sessions below their share can add
 * while those over it still hold what they queued when fewer sessions shared the bound, and what
 * sessions that connect, flood and disconnect in turn can queue, each below its own bound.
 */
export const MAX_QUEUED_REPLAYS = 2 * REPLAY_SHARE_BOUND;

export class Pipeline {
  readonly #replayQueues = new ReplayQueues();
  /** Sessions whose reading is paused by a replay bound. */
  readonly #heldForReplays = new Set<PluginSession>();
  /** Sessions one of whose replays was refused: their other queued replays are dropped. */
  readonly #refusedReplays = new WeakSet<PluginSession>();
  /** Closing sessions whose final frame goes out at the end of this tick. */
  #ending = new Set<PluginSession>();
  readonly #opts: PipelineOptions;
  readonly #now: () => number;
  #batch: EventRecord[] = [];
  #sessions = new Set<PluginSession>();
  #scheduled = false;
  /** Events decided since start (replays excluded). */
  decided = 0;
  replays = 0;

  constructor(opts: PipelineOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Replays received and not yet decided, over all sessions. */
  get queuedReplays(): number {
    return this.#replayQueues.size;
  }

  /** Events decided but not yet written. */
  get pending(): number {
    return this.#batch.length;
  }

  /** Decides one event. Throws ProtocolError only for values no plugin may send (bad vCPU, …). */
  submit(session: PluginSession, msg: EventMsg, receivedNs: bigint): void {
    if (!session.info) return;
    if (msg.replay) {
      this.#replayQueues.push(session, { msg, receivedNs });
      session.replayBacklog++;
      this.#holdIfOver(session);
      this.#schedule();
      return;
    }
    this.#decide(session, msg, receivedNs);
  }

  #decide(session: PluginSession, msg: EventMsg, receivedNs: bigint): void {
    const info = session.info;
    if (!info) return;
    let kernelMismatch: string[] | null = null;
    let notAbort = false;
    const kernel = msg.replay || msg.vcpu === null ? null : (this.#opts.kernelExit?.(info, msg.vcpu) ?? null);
    if (kernel) {
      const checked = crossCheck(msg, kernel);
      msg = checked.msg;
      kernelMismatch = checked.mismatched;
      notAbort = checked.notAbort === true;
    }
    const { event, nonConforming } = typeEvent(msg, info, this.#now());
    const record: EventRecord = {
      session: info,
      msg,
      ord: session.nextOrd(),
      event,
      nonConforming,
      kernelMismatch,
      duplicate: false,
      replay: msg.replay,
      decision: null,
      verdict: null,
      verdictDowngrade: null,
      receivedNs,
      latencyNs: 0n,
    };
    if (msg.replay) {
      this.replays++;
    } else {
      let decision: Decision;
      let built: ReturnType<typeof buildVerdict>;
      const provider = this.#opts.policy();
      const va = exitHasVa(msg.type, msg.type === 'sea' ? msg.esr : null);
      try {
        decision = notAbort ? notAbortDecision(provider.version) : provider.decide(event, info.host);
        built = buildVerdict(msg.seq, decision, msg.type, info.host, info.kvmInject, va);
      } catch (err) {
        if (isProtocolError(err)) throw err;
        this.#opts.onDecideError?.(err, record);
        decision = safeDecision(event, provider.version, 'safe-default');
        built = buildVerdict(msg.seq, decision, msg.type, info.host, info.kvmInject, va);
      }
      record.decision = decision;
      record.verdict = built.verdict;
      record.verdictDowngrade = built.downgrade;
      session.queue(encodeVerdict(built.verdict));
      this.#sessions.add(session);
      this.decided++;
    }
    this.#batch.push(record);
    this.#schedule();
  }

  /**
   * Queues a frame to go out after this tick's batch is durable. Heartbeat echoes use it: a plugin
   * that sends its replays and then a HEARTBEAT knows, when the echo arrives, that the replays
   * are recorded (docs/protocol.md "Fallback, replay and reconnect").
   */
  afterBatch(session: PluginSession, frame: Buffer): void {
    if (this.#replayQueues.has(session)) {
      this.#replayQueues.push(session, { echo: frame });
      // Behind replays an echo waits as long as they do: counted with them, so that a peer
      // streaming HEARTBEATs behind 16,000 replays is not read on without bound.
      session.replayBacklog++;
      this.#holdIfOver(session);
    } else {
      session.queue(frame);
      this.#sessions.add(session);
    }
    this.#schedule();
  }

  /**
   * A session is closing: its final frame goes out once everything received before it is decided,
   * stored and written — its queued replays included — never before the batch is durable.
   */
  endSession(session: PluginSession): void {
    if (this.#replayQueues.has(session)) this.#replayQueues.push(session, { end: true });
    else this.#ending.add(session);
    this.#schedule();
  }

  /** Moves up to `n` queued replays (and the echoes and final frames behind them) into this batch. */
  #takeReplays(n: number): void {
    this.#replayQueues.take(n, (s, e) => this.#takeEntry(s, e));
    if (this.#heldForReplays.size === 0 || this.#replayQueues.size >= MAX_QUEUED_REPLAYS) return;
    for (const s of this.#heldForReplays) {
      if (this.#overBound(s)) continue;
      s.holdReplays(false);
      this.#heldForReplays.delete(s);
    }
  }

  /** Stops reading `session` while its queued replays are over a bound (`#overBound`). */
  #holdIfOver(session: PluginSession): void {
    if (!this.#overBound(session) || this.#heldForReplays.has(session)) return;
    session.holdReplays(true);
    this.#heldForReplays.add(session);
  }

  /**
   * Its own bound, the bound over all sessions, or, past REPLAY_SHARE_BOUND over all sessions, its
   * even share of that bound: at or over one, a session is not read.
   */
  #overBound(session: PluginSession): boolean {
    const backlog = session.replayBacklog;
    const queued = this.#replayQueues.size;
    if (backlog >= MAX_REPLAY_BACKLOG || queued >= MAX_QUEUED_REPLAYS) return true;
    return queued >= REPLAY_SHARE_BOUND && backlog * this.#replayQueues.sessions >= REPLAY_SHARE_BOUND;
  }

  #takeEntry(session: PluginSession, entry: QueuedEntry): void {
    if ('echo' in entry) {
      session.replayBacklog--;
      // An echo says every replay before it is stored: after a refused one, some were not, and
      // the plugin would forget them. The session's ERROR is its answer.
      if (this.#refusedReplays.has(session)) return;
      session.queue(entry.echo);
      this.#sessions.add(session);
      return;
    }
    if ('end' in entry) {
      this.#ending.add(session);
      return;
    }
    session.replayBacklog--;
    if (this.#refusedReplays.has(session)) return;
    try {
      this.#decide(session, entry.msg, entry.receivedNs);
    } catch (err) {
      // A replay with a value no plugin may send: that session ends, as it would have on receipt.
      this.#refusedReplays.add(session);
      const perr = isProtocolError(err) ? err : null;
      const message = perr ? perr.message : `internal error: ${(err as Error).message}`;
      this.#opts.bus.emit('protocolError', perr?.reason ?? 'internal', message, session.info);
      session.close(
        { type: 'error', code: perr?.wire ?? WIRE_ERROR.INTERNAL, message },
        'protocol_error',
        message,
      );
    }
  }

  /** Ends the tick when nothing is queued: at stop, every queued replay is taken. */
  drain(): void {
    this.#takeReplays(Number.POSITIVE_INFINITY);
    this.flush();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Ends the tick: durable sinks, then the writes, then everything else. */
  flush(): void {
    this.#scheduled = false;
    this.#takeReplays(REPLAYS_PER_BATCH);
    if (this.#replayQueues.size > 0) this.#schedule();
    if (this.#batch.length === 0 && this.#sessions.size === 0 && this.#ending.size === 0) return;
    const batch = this.#batch;
    const sessions = this.#sessions;
    const ending = this.#ending;
    this.#batch = [];
    this.#sessions = new Set();
    this.#ending = new Set();
    if (batch.length > 0) this.#opts.bus.emit('beforeReply', batch);
    // Replays enter the rate/repeat state once the store has said whether they are new.
    if (this.#opts.observe) for (const r of batch) if (r.replay && !r.duplicate) this.#opts.observe(r.event);
    for (const s of sessions) s.flush();
    for (const s of ending) s.end();
    const written = process.hrtime.bigint();
    for (const r of batch) r.latencyNs = written - r.receivedNs;
    if (batch.length > 0) this.#opts.bus.emit('afterReply', batch);
  }
}
