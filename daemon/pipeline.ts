/**
 * The verdict path: event → typed event → decision → verdict bytes, batched per event-loop tick.
 * Within a tick every decoded event is decided at once; at the end of the tick the batch goes to
 * the durable sinks (the store, in one transaction), then every verdict is written — one write per
 * session — and only then do metrics and logs see it. Nothing slow runs between receive and write.
 */

import type { EventBus, EventRecord, SessionInfo } from '../events/index.js';
import type { KvmExit } from '../kvm/index.js';
import type { Decision, DecisionProvider, PolicyEvent } from '../policies/index.js';
import { type EventMsg, encodeVerdict, isProtocolError, WIRE_ERROR } from '../protocol/index.js';
import { crossCheck } from './kernel-crosscheck.js';
import { safeDecision } from './safe-decision.js';
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
   * The exit record in the kernel's kvm_run page of an attached vCPU, or null when the vCPU is not
   * attached (or the page cannot be read). When present, the plugin's copy is cross-checked.
   */
  kernelExit?: (session: SessionInfo, vcpu: number) => KvmExit | null;
  /** Reports a policy or verdict failure that the safe decision covered. */
  onDecideError?: (err: unknown, record: Pick<EventRecord, 'session' | 'event'>) => void;
  now?: () => number;
}

/**
 * Replays (events a plugin handled by fallback, reported on reconnect) need no verdict, so they
 * wait in a queue and at most this many join each batch: a flood of 30,000 of them costs every
 * batch a bounded slice of work (~2 ms) instead of one batch seconds of it, and other VMs'
 * verdicts go out in between. A session's heartbeat echo waits behind its own queued replays, so
 * the echo still acknowledges everything before it.
 */
export const REPLAYS_PER_BATCH = 16;
/**
 * Replays of one session queued at most; past it that session's socket is not read. Above what a
 * plugin keeps (vmm/plugin-client.ts keeps 4,096), so that only a peer flooding beyond it waits.
 */
export const MAX_REPLAY_BACKLOG = 16_384;

type Queued =
  | { session: PluginSession; msg: EventMsg; receivedNs: bigint }
  | { session: PluginSession; echo: Buffer };

export class Pipeline {
  #replays: Queued[] = [];
  #replayHead = 0;
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

  /** Events decided but not yet written. */
  get pending(): number {
    return this.#batch.length;
  }

  /** Decides one event. Throws ProtocolError only for values no plugin may send (bad vCPU, …). */
  submit(session: PluginSession, msg: EventMsg, receivedNs: bigint): void {
    if (!session.info) return;
    if (msg.replay) {
      this.#replays.push({ session, msg, receivedNs });
      if (++session.replayBacklog >= MAX_REPLAY_BACKLOG) session.holdReplays(true);
      this.#schedule();
      return;
    }
    this.#decide(session, msg, receivedNs);
  }

  #decide(session: PluginSession, msg: EventMsg, receivedNs: bigint): void {
    const info = session.info;
    if (!info) return;
    let kernelMismatch: string[] | null = null;
    const kernel = msg.replay || msg.vcpu === null ? null : (this.#opts.kernelExit?.(info, msg.vcpu) ?? null);
    if (kernel) {
      const checked = crossCheck(msg, kernel);
      msg = checked.msg;
      kernelMismatch = checked.mismatched;
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
        decision = provider.decide(event, info.host);
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
    if (session.replayBacklog > 0) {
      this.#replays.push({ session, echo: frame });
      this.#schedule();
      return;
    }
    session.queue(frame);
    this.#sessions.add(session);
    this.#schedule();
  }

  /** Moves up to `n` queued replays (and the echoes behind them) into this batch. */
  #takeReplays(n: number): void {
    let taken = 0;
    while (this.#replayHead < this.#replays.length && taken < n) {
      const q = this.#replays[this.#replayHead++] as Queued;
      if ('echo' in q) {
        q.session.queue(q.echo);
        this.#sessions.add(q.session);
        continue;
      }
      taken++;
      if (--q.session.replayBacklog === MAX_REPLAY_BACKLOG - 1) q.session.holdReplays(false);
      if (!q.session.open) continue;
      try {
        this.#decide(q.session, q.msg, q.receivedNs);
      } catch (err) {
        // A replay with a value no plugin may send: that session ends, as it would have on receipt.
        const perr = isProtocolError(err) ? err : null;
        const message = perr ? perr.message : `internal error: ${(err as Error).message}`;
        this.#opts.bus.emit('protocolError', perr?.reason ?? 'internal', message, q.session.info);
        q.session.close(
          { type: 'error', code: perr?.wire ?? WIRE_ERROR.INTERNAL, message },
          'protocol_error',
          message,
        );
      }
    }
    if (this.#replayHead === this.#replays.length) {
      this.#replays = [];
      this.#replayHead = 0;
    } else if (this.#replayHead > 4096) {
      this.#replays = this.#replays.slice(this.#replayHead);
      this.#replayHead = 0;
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
    if (this.#replayHead < this.#replays.length) this.#schedule();
    if (this.#batch.length === 0 && this.#sessions.size === 0) return;
    const batch = this.#batch;
    const sessions = this.#sessions;
    this.#batch = [];
    this.#sessions = new Set();
    if (batch.length > 0) this.#opts.bus.emit('beforeReply', batch);
    // Replays enter the rate/repeat state once the store has said whether they are new.
    if (this.#opts.observe) for (const r of batch) if (r.replay && !r.duplicate) this.#opts.observe(r.event);
    for (const s of sessions) s.flush();
    const written = process.hrtime.bigint();
    for (const r of batch) r.latencyNs = written - r.receivedNs;
    if (batch.length > 0) this.#opts.bus.emit('afterReply', batch);
  }
}
