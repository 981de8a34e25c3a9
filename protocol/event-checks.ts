/**
 * The field checks protocol 1.1 adds (docs/protocol.md §4.1, §4.4 and §10.1). Each closes a value
 * that 1.0 accepted without error although no conforming plugin can send it; a 1.0 session keeps
 * 1.0's checks so that a plugin written to 1.0 keeps working unchanged. All of them are about
 * one message alone. {@link checkEvent} holds the checks of every version that need the HELLO's
 * vCPU count and {@link checkEventCaps} the 1.1 rule that needs the HELLO's capabilities, both for
 * the daemon and for the reference client's check before sending; the one other check that needs
 * the session (the seqs still unanswered) is the daemon's.
 */
import { ESR_EC_DABT_LOW, ESR_EC_IABT_LOW } from '../kvm/index.js';
import { BUS_MCEERR_AO, BUS_MCEERR_AR, CAP, MMIO_LENS } from './constants.js';
import { ProtocolError } from './errors.js';
import type { EventMsg, HelloMsg } from './messages.js';

const bad = (message: string) => new ProtocolError('BAD_FIELD', message);

/** Throws BAD_FIELD when a 1.1 HELLO's fields contradict each other. */
export function checkHello11(h: HelloMsg): void {
  // No process has pid 0. Pid 1 is allowed: a VMM alone in its PID namespace (Firecracker under
  // its jailer's --new-pid-ns) is pid 1 there, and vmm_pid is never signalled anyway (§5.1).
  if (h.vmmPid === 0) throw bad('vmm_pid 0 names no process');
  const posted = (h.caps & CAP.EXT_ABT_ESR) !== 0;
  if (posted && h.extAbtEsrCap === 0)
    throw bad('EXT_ABT_ESR is declared but ext_abt_esr_cap is 0: which capability number was probed?');
  if (!posted && h.extAbtEsrCap !== 0)
    throw bad(`ext_abt_esr_cap is ${h.extAbtEsrCap} but EXT_ABT_ESR is not declared`);
}

/**
 * Throws BAD_FIELD for an event that every version refuses from a plugin whose HELLO declared
 * `vcpuCount` vCPUs: one without a vCPU that is not a SIGBUS, a vCPU past the count, a SIGBUS
 * whose si_code is neither BUS_MCEERR_AR nor BUS_MCEERR_AO.
 */
export function checkEvent(e: EventMsg, vcpuCount: number): void {
  if (e.type !== 'sigbus' && e.vcpu === null) throw bad(`${e.type} event without a vCPU`);
  if (e.vcpu !== null && e.vcpu >= vcpuCount)
    throw bad(`vCPU ${e.vcpu} out of range (HELLO declared ${vcpuCount})`);
  if (e.type === 'sigbus' && e.siCode !== BUS_MCEERR_AR && e.siCode !== BUS_MCEERR_AO)
    throw bad(`sigbus si_code ${e.siCode} is not BUS_MCEERR_AR (4) or BUS_MCEERR_AO (5)`);
}

/**
 * The capability an event kind needs declared (1.1): an exit KVM sends only once the VMM enabled
 * it. MMIO and SIGBUS exist on every host.
 */
const NEEDS_CAP: Readonly<Record<EventMsg['type'], number>> = {
  sea: CAP.SEA_TO_USER,
  nisv: CAP.NISV_TO_USER,
  mmio: 0,
  sigbus: 0,
};

/**
 * Throws BAD_FIELD for an event of a kind whose capability the 1.1 HELLO's `caps` did not declare
 * (§4.4): a SEA without SEA_TO_USER, an NISV without NISV_TO_USER. A 1.0 session does not check it.
 */
export function checkEventCaps(e: EventMsg, caps: number): void {
  const need = NEEDS_CAP[e.type];
  if ((caps & need) === need) return;
  const name = e.type === 'sea' ? 'SEA_TO_USER' : 'NISV_TO_USER';
  throw bad(`${e.type} event, but HELLO did not declare ${name}`);
}

/** Throws BAD_FIELD for an event no 1.1 plugin may send, whatever its session. */
export function checkEvent11(e: EventMsg): void {
  // 0 is what an uninitialised counter or a zeroed buffer holds; seqs start at 1 and wrap to 1.
  if (e.seq === 0) throw bad('seq 0 is reserved: a plugin counts from 1 and wraps to 1');
  // time_ns is half of a replay's identity (VM, seq, time_ns): a zero clock makes events collide.
  if (e.timeNs === 0n) throw bad('time_ns is 0: every event carries its CLOCK_REALTIME time');
  switch (e.type) {
    case 'sea': {
      const ec = Number((e.esr >> 26n) & 0x3fn);
      if (ec !== ESR_EC_DABT_LOW && ec !== ESR_EC_IABT_LOW)
        throw bad(`SEA ESR 0x${e.esr.toString(16)} has EC 0x${ec.toString(16)}, not an abort from the guest`);
      return;
    }
    case 'nisv':
      return;
    case 'mmio':
      if (!MMIO_LENS.has(e.len)) throw bad(`MMIO len ${e.len} is not 1, 2, 4 or 8`);
      return;
    case 'sigbus':
      // AR is taken by the thread whose access failed: a vCPU thread names its vCPU. AO is
      // asynchronous (found by scrubbing or by another process) and belongs to no vCPU.
      if (e.siCode === BUS_MCEERR_AR && e.vcpu === null)
        throw bad('BUS_MCEERR_AR without a vCPU: report an AR taken off a vCPU thread as AO');
      if (e.siCode === BUS_MCEERR_AO && e.vcpu !== null)
        throw bad(`BUS_MCEERR_AO names vCPU ${e.vcpu}: an asynchronous error belongs to no vCPU`);
      return;
  }
}
