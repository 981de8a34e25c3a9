/**
 * Wire event → typed PolicyEvent, through kvm/'s decoders. This is where a plugin's numbers
 * become meaning: the ESR is decoded, the GPA is taken only when the kernel flagged it valid and
 * reduced to its page, and a SEA ESR with bits a conforming kernel clears is noted.
 */

import type { SessionInfo } from '../events/index.js';
import {
  assertNever,
  decodeEsr,
  ESR_EC_DABT_LOW,
  type Esr,
  ISS_MASK,
  KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
  nonConformingSeaEsrBits,
} from '../kvm/index.js';
import { type PolicyEvent, STATE_REBUILD_WINDOW_MS } from '../policies/index.js';
import { BUS_MCEERR_AR, checkEvent, checkEventCaps, type EventMsg } from '../protocol/index.js';

/** Guest page of an address (low 12 bits cleared), without a negative-mask BigInt operation. */
const pageOf = (addr: bigint): bigint => addr - (addr & 0xfffn);
const NONE: readonly string[] = Object.freeze([]);

/**
 * The last SEA syndrome decoded, with its non-conforming bits: a storm repeats one ESR, and its
 * decoding (a pure function of the raw value) is then not done again. Frozen, as events share it.
 */
let lastSea: { esr: Esr; nonConforming: readonly string[] } | null = null;

function decodeSea(raw: bigint): { esr: Esr; nonConforming: readonly string[] } {
  if (lastSea?.esr.raw === raw) return lastSea;
  const esr = decodeEsr(raw);
  if (esr.abort) Object.freeze(esr.abort);
  lastSea = { esr: Object.freeze(esr), nonConforming: Object.freeze(nonConformingSeaEsrBits(raw)) };
  return lastSea;
}

export interface TypedEvent {
  event: PolicyEvent;
  /** ESR bits a conforming kernel clears, present in a SEA event (empty when conforming). */
  nonConforming: readonly string[];
}

/** Every PolicyEvent is built here, with one property order, so the hot path stays monomorphic. */
function policyEvent(
  kind: PolicyEvent['kind'],
  s: SessionInfo,
  msg: EventMsg,
  timeMs: number,
  esr: Esr | null,
  abort: PolicyEvent['abort'],
  gpa: bigint | null,
  sigbusCode: PolicyEvent['sigbusCode'],
): PolicyEvent {
  const a = esr?.abort ?? null;
  return {
    kind,
    vm: s.vm,
    vcpu: msg.vcpu,
    timeMs,
    esr,
    abort,
    fsc: a === null ? null : a.fscClass.kind,
    severity: a === null || a.severity === null ? 'unknown' : a.severity,
    gpa,
    sigbusCode,
  };
}

/**
 * How long before its session opened a replay may be dated: as far back as the rate and repeat
 * state the daemon rebuilds at start reaches (7 days).
 */
export const REPLAY_MAX_AGE_MS = STATE_REBUILD_WINDOW_MS;

/**
 * The time a replay is counted and stored at (ms). It happened while the daemon was away, so it
 * counts when the plugin saw it — but only within [its session's open − REPLAY_MAX_AGE_MS, now]:
 * any connected peer chooses `time_ns`, and a date after the daemon took the event would outlast
 * every real event in a rate ring and fall into windows it never was in, while one before the
 * bound (1970, or 0 from a 1.0 plugin) is counted at the bound, where no window of 7 days or
 * less that a live event opens reaches it. The plugin's `time_ns` is stored unchanged.
 */
export function replayTimeMs(timeNs: bigint, openedAtMs: number, nowMs: number): number {
  const lo = Math.min(openedAtMs, nowMs) - REPLAY_MAX_AGE_MS;
  const ms = Number(timeNs / 1_000_000n);
  return Math.max(lo, Math.min(ms, nowMs));
}

/** Builds the policy's view of an event; ProtocolError BAD_FIELD for values no plugin may send. */
export function typeEvent(msg: EventMsg, s: SessionInfo, nowMs: number): TypedEvent {
  if (s.minor >= 1) checkEventCaps(msg, s.caps);
  checkEvent(msg, s.vcpuCount);
  // A live event counts at the daemon's time; a replay at the plugin's, within what is plausible.
  const timeMs = msg.replay ? replayTimeMs(msg.timeNs, s.openedAtMs, nowMs) : nowMs;
  switch (msg.type) {
    case 'sea': {
      const { esr, nonConforming } = decodeSea(msg.esr);
      const gpa = msg.kvmFlags & KVM_EXIT_ARM_SEA_FLAG_GPA_VALID ? pageOf(msg.gpa) : null;
      return {
        event: policyEvent('sea', s, msg, timeMs, esr, esr.abort?.kind ?? null, gpa, null),
        nonConforming,
      };
    }
    case 'nisv': {
      // KVM reports only the ISS for NISV exits; it is a data abort from the guest (EC 0x24).
      const esr = decodeEsr((BigInt(ESR_EC_DABT_LOW) << 26n) | (msg.esrIss & BigInt(ISS_MASK)));
      return {
        event: policyEvent('nisv', s, msg, timeMs, esr, 'data', pageOf(msg.faultIpa), null),
        nonConforming: NONE,
      };
    }
    case 'mmio':
      return {
        event: policyEvent('mmio', s, msg, timeMs, null, 'data', pageOf(msg.physAddr), null),
        nonConforming: NONE,
      };
    case 'sigbus': {
      const code = msg.siCode === BUS_MCEERR_AR ? 'BUS_MCEERR_AR' : 'BUS_MCEERR_AO';
      const gpa = msg.gpa === null ? null : pageOf(msg.gpa);
      return { event: policyEvent('sigbus', s, msg, timeMs, null, null, gpa, code), nonConforming: NONE };
    }
    default:
      return assertNever(msg, 'event');
  }
}
