/**
 * The abort the guest receives after seawall's verdict is carried out: which vector it enters,
 * and what ESR_EL1 and FAR_EL1 read there. Checked against real kernels by the real-KVM lane
 * (docs/real-kvm.md):
 *
 * - KVM injection (`ext_dabt_pending`; reference §3 "The ESR the guest receives"): EC for the
 *   guest's EL (0x25 data / 0x21 instruction at EL1, 0x24 / 0x20 at EL0), IL set for an A64
 *   instruction, FSC 0x10; a merged kernel sets nothing else (no WnR even for a store, no FnV,
 *   EA or SET). FAR is the address of the access that exited; ELR is that access (not skipped).
 * - Register-level emulation (INJECT_EMULATED, docs/protocol.md §5.1): the verdict's ESR with
 *   EC switched to the current-EL class at EL1; FAR is the exit's guest VA when the ESR has FnV
 *   clear (only a SEA exit gives one), else 0 with FnV set.
 *
 * **Linux 6.1 sign-extends.** Its injection builds the syndrome as a 32-bit value with EC in bits
 * [31:26] and widens it into the 64-bit ESR_EL1 with bit 31 copied upward: the guest reads
 * `0xffffffff96000010` where 7.x gives `0x96000010`. Bits [63:32] of ESR_EL1 are RES0/ISS2, so
 * compare bits [31:0] of what the guest reads with `esr` here.
 */
import {
  ESR_EC_DABT_CUR,
  ESR_EC_DABT_LOW,
  ESR_EC_IABT_CUR,
  ESR_EC_IABT_LOW,
  FSC_PARITY,
  FSC_SEA,
  ISS_MASK,
} from './constants.js';
import type { AbortKind } from './iss.js';

/** The exception level the guest was at when the abort was taken (AArch64 only). */
export type GuestEl = 0 | 1;

export interface GuestAbort {
  /** Offset from VBAR_EL1: 0x200 current EL with SP_ELx (the guest was at EL1h), 0x400 lower EL. */
  vectorOffset: 0x200 | 0x400;
  /** ESR_EL1 bits [31:0] as the guest reads them (bits [63:32]: see `esrUpper`). */
  esr: bigint;
  /** FAR_EL1, when the address is known (null: FnV, or the VMM has none to give). */
  far: bigint | null;
  /** What bits [63:32] of ESR_EL1 read: zero on 7.x, copies of bit 31 on Linux 6.1's KVM injection. */
  esrUpper: 'zero' | 'linux-6.1-sign-extended';
}

const IL = 1n << 25n;
const EC_SHIFT = 26n;

/** ESR_EL1 [31:0] after KVM injects `kind` (with the posted ABI's `iss`, when given). */
export function kvmInjectedEsr(kind: AbortKind, el: GuestEl, iss?: number): bigint {
  const ec =
    kind === 'data'
      ? el === 1
        ? ESR_EC_DABT_CUR
        : ESR_EC_DABT_LOW
      : el === 1
        ? ESR_EC_IABT_CUR
        : ESR_EC_IABT_LOW;
  // The posted ABI takes the ISS as the starting value and ORs in EC, IL and FSC 0x10.
  return (BigInt(ec) << EC_SHIFT) | IL | BigInt((iss ?? 0) & ISS_MASK) | BigInt(FSC_SEA);
}

/** ESR_EL1 after the VMM emulates an abort with the verdict's `esr` (EC of a lower EL). */
export function emulatedGuestEsr(verdictEsr: bigint, el: GuestEl): bigint {
  const ec = Number((verdictEsr >> EC_SHIFT) & 0x3fn);
  const cur = ec === ESR_EC_DABT_LOW ? ESR_EC_DABT_CUR : ec === ESR_EC_IABT_LOW ? ESR_EC_IABT_CUR : ec;
  const low = verdictEsr & 0xffffffffn;
  return el === 1 ? (low & ~(0x3fn << EC_SHIFT)) | (BigInt(cur) << EC_SHIFT) : low;
}

/** What the guest receives after a KVM injection at `far` (kernel `release`, e.g. from uname). */
export function guestAbortAfterKvm(
  kind: AbortKind,
  el: GuestEl,
  far: bigint | null,
  iss?: number,
  release?: string,
): GuestAbort {
  return {
    vectorOffset: el === 1 ? 0x200 : 0x400,
    esr: kvmInjectedEsr(kind, el, iss),
    far,
    esrUpper: release !== undefined && /^6\.1\./.test(release) ? 'linux-6.1-sign-extended' : 'zero',
  };
}

/** What the guest receives after the VMM's register-level emulation of `verdictEsr` at `far`. */
export function guestAbortAfterEmulation(verdictEsr: bigint, el: GuestEl, far: bigint | null): GuestAbort {
  return {
    vectorOffset: el === 1 ? 0x200 : 0x400,
    esr: emulatedGuestEsr(verdictEsr, el),
    far,
    esrUpper: 'zero',
  };
}

/** ISS bit 10, FnV: FAR is not valid (defined for FSC 0x10, a SEA not on a walk, and 0x18). */
const ISS_FNV = 1 << 10;

/**
 * The ESR a VMM writes when it emulates an abort (docs/protocol.md §5.1, INJECT_EMULATED): EC for
 * an abort from a lower EL, IL set, the ISS (FSC 0x10 when it names no FSC). `vaKnown` false —
 * the exit gave the VMM no guest virtual address (a SIGBUS, a NISV or MMIO exit, whose address is
 * a guest physical one, or a SEA whose own ESR had FnV) — sets FnV, so the guest does not read
 * FAR_EL1, which the VMM then writes as 0.
 */
export function emulatedAbortEsr(kind: AbortKind, iss?: number, vaKnown = true): bigint {
  const ec = kind === 'data' ? ESR_EC_DABT_LOW : ESR_EC_IABT_LOW;
  let v = (iss ?? FSC_SEA) & ISS_MASK;
  if ((v & 0x3f) === 0) v |= FSC_SEA;
  const fsc = v & 0x3f;
  if (!vaKnown && (fsc === FSC_SEA || fsc === FSC_PARITY)) v |= ISS_FNV;
  return (BigInt(ec) << EC_SHIFT) | IL | BigInt(v);
}
