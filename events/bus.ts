/**
 * Sinks subscribe to what the pipeline and the plugin server do (rasdaemon's shape: handlers
 * publish, storage/metrics/logging subscribe). A sink that throws is counted and logged by the
 * bus; it never breaks the verdict path or the other sinks.
 */
import type { Decision, Downgrade, PolicyEvent } from '../policies/index.js';
import type { EventMsg, VerdictMsg } from '../protocol/index.js';
import type { SessionInfo } from './session-info.js';

/** Everything known about one event once decided. */
export interface EventRecord {
  session: SessionInfo;
  msg: EventMsg;
  /**
   * The event's place in its session (1, 2, …). Set by the pipeline; the seq alone does not
   * identify an event, since a plugin may reuse a seq once its verdict has arrived.
   */
  ord?: number;
  event: PolicyEvent;
  /** ESR bits a conforming kernel clears but the plugin's copy had (SEA only). */
  nonConforming: readonly string[];
  /**
   * For an attached vCPU: the fields where the plugin's copy differed from the kernel's kvm_run
   * page (the kernel's values were used). null when the vCPU is not attached.
   */
  kernelMismatch: string[] | null;
  /** Reported by the plugin after a fallback: recorded, not answered. */
  replay: boolean;
  /** null for replays. */
  decision: Decision | null;
  /**
   * A replay the store recognised as already recorded (reported again after a daemon crash). Set
   * by the store in beforeReply; later sinks and the rate state skip it so nothing counts twice.
   */
  duplicate: boolean;
  verdict: Omit<VerdictMsg, 'type'> | null;
  /** The daemon had to change the injection's path for this host. */
  verdictDowngrade: Downgrade | null;
  /** process.hrtime.bigint() when the frame was decoded. */
  receivedNs: bigint;
  /** Receive → reply written, in ns; set before afterReply. */
  latencyNs: bigint;
}

/** How a session ended; `vm_exiting`: the plugin's GOODBYE said the VM is shutting down. */
export type SessionOutcome = 'normal' | 'vm_exiting' | 'protocol_error' | 'disconnect' | 'shutdown';

/** What a 1.1 APPLIED adds: the ACTION the vCPU got, and whose answer it was (protocol APPLIED_SOURCE). */
export interface AppliedDetail {
  action: number;
  source: 'verdict' | 'fallback';
}

export interface Sink {
  readonly name: string;
  /** Synchronously before the batch's verdicts are written: storage that must be durable first. */
  beforeReply?(batch: readonly EventRecord[]): void;
  /** After the verdicts are written: metrics, logs, hooks. */
  afterReply?(batch: readonly EventRecord[]): void;
  sessionOpened?(s: SessionInfo): void;
  sessionClosed?(s: SessionInfo, outcome: SessionOutcome, detail: string | null): void;
  /** A connection refused before or at HELLO (auth, VM id in use, bounds). */
  sessionRejected?(
    reason: string,
    detail: string,
    peer: { pid: number; uid: number; gid: number } | null,
  ): void;
  protocolError?(reason: string, detail: string, s: SessionInfo | null): void;
  /**
   * The plugin reported what applying a verdict returned; from 1.1 on also what was applied, which
   * differs from the verdict when the plugin's fallback answered first (`detail` null in 1.0).
   */
  applied?(s: SessionInfo, seq: number, result: number, detail: AppliedDetail | null): void;
}

type Hook = Exclude<keyof Sink, 'name'>;

export class EventBus {
  readonly #sinks: Sink[] = [];
  /** Sink failures by sink name (also exported as a metric by the metrics sink). */
  readonly failures = new Map<string, number>();
  onSinkError: (sink: string, hook: string, err: unknown) => void = () => {};

  add(sink: Sink): void {
    this.#sinks.push(sink);
  }

  emit<H extends Hook>(hook: H, ...args: Parameters<NonNullable<Sink[H]>>): void {
    for (const sink of this.#sinks) {
      const fn = sink[hook] as ((...a: unknown[]) => void) | undefined;
      if (!fn) continue;
      try {
        fn.apply(sink, args);
      } catch (err) {
        this.failures.set(sink.name, (this.failures.get(sink.name) ?? 0) + 1);
        this.onSinkError(sink.name, hook, err);
      }
    }
  }
}
