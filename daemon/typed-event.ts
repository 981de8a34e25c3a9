/**
 * Wire event → typed PolicyEvent, through kvm/'s decoders. This is where a plugin's numbers
 * become meaning: the ESR is decoded, the GPA is taken only when the kernel flagged it valid and
 * reduced to its page, and a SEA ESR with bits a conforming kernel clears is noted.
 */

import { assertNever } from '../kvm/assert-never.js';
import {
  decodeEsr,
  ESR_EC_DABT_LOW,
  ISS_MASK,
  KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
  nonConformingSeaEsrBits,
} from '../kvm/index.js';
import type { PolicyEvent } from '../policies/decision.js';
import { BUS_MCEERR_AO, BUS_MCEERR_AR, type EventMsg, ProtocolError } from '../protocol/index.js';
import type { SessionInfo } from './session-info.js';

const PAGE_MASK = ~0xfffn;

export interface TypedEvent {
  event: PolicyEvent;
  /** ESR bits a conforming kernel clears, present in a SEA event (empty when conforming). */
  nonConforming: string[];
}

/** Builds the policy's view of an event; ProtocolError BAD_FIELD for values no plugin may send. */
export function typeEvent(msg: EventMsg, s: SessionInfo, nowMs: number): TypedEvent {
  if (msg.type !== 'sigbus' && msg.vcpu === null)
    throw new ProtocolError('BAD_FIELD', `${msg.type} event without a vCPU`);
  if (msg.vcpu !== null && msg.vcpu >= s.vcpuCount) {
    throw new ProtocolError('BAD_FIELD', `vCPU ${msg.vcpu} out of range (HELLO declared ${s.vcpuCount})`);
  }
  // A replayed event happened while the daemon was away: its time is the plugin's.
  const timeMs = msg.replay ? Number(msg.timeNs / 1_000_000n) : nowMs;
  const base = { vm: s.vm, vcpu: msg.vcpu, timeMs, sigbusCode: null };
  switch (msg.type) {
    case 'sea': {
      const esr = decodeEsr(msg.esr);
      const a = esr.abort;
      return {
        event: {
          ...base,
          kind: 'sea',
          esr,
          abort: a?.kind ?? null,
          fsc: a?.fscClass.kind ?? null,
          severity: a?.severity ?? 'unknown',
          gpa: msg.kvmFlags & KVM_EXIT_ARM_SEA_FLAG_GPA_VALID ? msg.gpa & PAGE_MASK : null,
        },
        nonConforming: nonConformingSeaEsrBits(msg.esr),
      };
    }
    case 'nisv': {
      // KVM reports only the ISS for NISV exits; it is a data abort from the guest (EC 0x24).
      const esr = decodeEsr((BigInt(ESR_EC_DABT_LOW) << 26n) | (msg.esrIss & BigInt(ISS_MASK)));
      return {
        event: {
          ...base,
          kind: 'nisv',
          esr,
          abort: 'data',
          fsc: esr.abort?.fscClass.kind ?? null,
          severity: esr.abort?.severity ?? 'unknown',
          gpa: msg.faultIpa & PAGE_MASK,
        },
        nonConforming: [],
      };
    }
    case 'mmio':
      return {
        event: {
          ...base,
          kind: 'mmio',
          esr: null,
          abort: 'data',
          fsc: null,
          severity: 'unknown',
          gpa: msg.physAddr & PAGE_MASK,
        },
        nonConforming: [],
      };
    case 'sigbus': {
      if (msg.siCode !== BUS_MCEERR_AR && msg.siCode !== BUS_MCEERR_AO) {
        throw new ProtocolError(
          'BAD_FIELD',
          `sigbus si_code ${msg.siCode} is not BUS_MCEERR_AR (4) or BUS_MCEERR_AO (5)`,
        );
      }
      return {
        event: {
          ...base,
          kind: 'sigbus',
          esr: null,
          abort: null,
          fsc: null,
          severity: 'unknown',
          gpa: msg.gpa === null ? null : msg.gpa & PAGE_MASK,
          sigbusCode: msg.siCode === BUS_MCEERR_AR ? 'BUS_MCEERR_AR' : 'BUS_MCEERR_AO',
        },
        nonConforming: [],
      };
    }
    default:
      return assertNever(msg, 'event');
  }
}
