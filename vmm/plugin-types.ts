/**
 * The reference client's vocabulary: its options, what an exit report and a verdict outcome are,
 * its counters, and the verdict it applies by itself when the daemon does not answer in time.
 */
import { encodeInjection } from '../kvm/index.js';
import { ACTION, CAP, type EventMsg, type VerdictMsg } from '../protocol/index.js';

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
  /**
   * Reconnect backoff: from `initialMs`, doubling up to `maxMs` (50 ms and 2 s). It starts again
   * only after a session proved useful: its replays echoed, a verdict received, or up `maxMs`.
   */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** How long connect() waits for WELCOME (a socket-activated daemon may be starting). */
  helloTimeoutMs?: number;
  /**
   * The highest minor version to ask for: 1 (protocol 1.1, the default) or 0 (1.0 compatibility).
   * A daemon that speaks less says so, and the client asks again with what it speaks — for that
   * retry and the session it gets only: every later connect asks for this minor again (§10).
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
 * `fallbacks = replayed + lateVerdicts + replayDropped + replaysRefused + invalidEvents + replayQueue`.
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
  /**
   * Kept events dropped because a session that replayed them ended with an ERROR before its
   * replay echo: one per such session, the oldest it replayed (docs/protocol.md §9, point 6).
   */
  replaysRefused: number;
  /**
   * Exits every daemon would refuse (a vCPU index past `vcpuCount`, …: vmm/local-checks.ts):
   * answered by the fallback, never sent, never kept.
   */
  invalidEvents: number;
  reconnects: number;
}

const MERGED_DABT = encodeInjection({ kind: 'data' }, { abi: 'merged', ras: false });
const ZERO_EVENTS = new Uint8Array(64);

/**
 * The verdict the plugin applies by itself (docs/protocol.md "Fallback"), on a host with the
 * capabilities `caps` its HELLO declares.
 */
export function fallbackVerdict(
  policy: FallbackPolicy,
  msg: EventMsg,
  caps: number,
): Omit<VerdictMsg, 'type'> {
  const base = { seq: msg.seq, flags: 0, graceMs: 0, esr: 0n, vcpuEvents: ZERO_EVENTS };
  if (policy === 'kill') return { ...base, action: ACTION.KILL };
  // KVM's ext_dabt_pending is defined only after an abort exit, and only on a host with
  // KVM_CAP_ARM_INJECT_EXT_DABT (elsewhere byte 2 is pad, refused): a SIGBUS, or such a host,
  // gets RESUME, as the daemon's own verdicts do there.
  if (policy === 'inject' && msg.type !== 'sigbus' && (caps & CAP.INJECT_EXT_DABT) !== 0)
    return { ...base, action: ACTION.INJECT, vcpuEvents: MERGED_DABT };
  return { ...base, action: ACTION.RESUME };
}
