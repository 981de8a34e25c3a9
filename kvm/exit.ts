/**
 * Exit records read from a `struct kvm_run` image (reference §2): the decoder is a closed union
 * over the three exits seawall handles, and any other exit_reason is a typed error — never a
 * silent default. `writeExit` is the inverse, used by stand-in vCPUs in the simulator and tests.
 */
import koffi from 'koffi';
import { assertNever } from './assert-never.js';
import {
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
  KVM_EXIT_MMIO,
} from './constants.js';
import { KvmError } from './errors.js';
import { exitFieldOffset, KvmRun } from './layouts.js';

export type KvmExit =
  | {
      reason: 'arm-sea';
      flags: bigint;
      esr: bigint;
      /** Meaningful only when ESR.FnV is 0 (there is no GVA-valid flag); the kernel leaves 0 otherwise. */
      gva: bigint;
      gvaValid: boolean;
      /** Page aligned, from HPFAR; meaningful only when gpaValid. */
      gpa: bigint;
      gpaValid: boolean;
    }
  | { reason: 'arm-nisv'; esrIss: bigint; faultIpa: bigint }
  | { reason: 'mmio'; physAddr: bigint; data: Uint8Array; len: number; isWrite: boolean };

export type KvmExitReason = KvmExit['reason'];

/**
 * A kvm_run page whose last exit is not an abort exit (not MMIO, ARM_NISV, ARM_SEA or ARM_LDST64B,
 * reference §3): no abort may be injected after it, whatever the plugin's copy says.
 */
export interface NonAbortExit {
  reason: 'not-abort';
  /** The page's exit_reason. */
  code: number;
}

export const EXIT_REASON_CODE: Readonly<Record<KvmExitReason, number>> = {
  'arm-sea': KVM_EXIT_ARM_SEA,
  'arm-nisv': KVM_EXIT_ARM_NISV,
  mmio: KVM_EXIT_MMIO,
};

const OFF = {
  exitReason: koffi.offsetof(KvmRun, 'exit_reason'),
  seaFlags: exitFieldOffset('arm_sea', 'flags'),
  seaEsr: exitFieldOffset('arm_sea', 'esr'),
  seaGva: exitFieldOffset('arm_sea', 'gva'),
  seaGpa: exitFieldOffset('arm_sea', 'gpa'),
  nisvEsrIss: exitFieldOffset('arm_nisv', 'esr_iss'),
  nisvFaultIpa: exitFieldOffset('arm_nisv', 'fault_ipa'),
  mmioPhysAddr: exitFieldOffset('mmio', 'phys_addr'),
  mmioData: exitFieldOffset('mmio', 'data'),
  mmioLen: exitFieldOffset('mmio', 'len'),
  mmioIsWrite: exitFieldOffset('mmio', 'is_write'),
} as const;

/** Bytes of kvm_run needed to decode any exit record seawall handles. */
export const KVM_RUN_EXIT_RECORD_END = koffi.offsetof(KvmRun, 'exit') + 32;

const FNV_BIT = 1n << 10n;

function view(buf: Uint8Array): DataView {
  if (buf.byteLength < KVM_RUN_EXIT_RECORD_END) {
    throw new KvmError(
      'SEAWALL_KVM_SHORT_BUFFER',
      `kvm_run image of ${buf.byteLength} bytes is shorter than the ${KVM_RUN_EXIT_RECORD_END} an exit record needs`,
    );
  }
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Reads `exit_reason` alone. */
export function readExitReason(buf: Uint8Array): number {
  return view(buf).getUint32(OFF.exitReason, true);
}

/** Decodes the exit record of a kvm_run image (little endian, as on arm64 Linux). */
export function decodeExit(buf: Uint8Array): KvmExit {
  const dv = view(buf);
  const code = dv.getUint32(OFF.exitReason, true);
  switch (code) {
    case KVM_EXIT_ARM_SEA: {
      const flags = dv.getBigUint64(OFF.seaFlags, true);
      const esr = dv.getBigUint64(OFF.seaEsr, true);
      return {
        reason: 'arm-sea',
        flags,
        esr,
        gva: dv.getBigUint64(OFF.seaGva, true),
        gvaValid: (esr & FNV_BIT) === 0n,
        gpa: dv.getBigUint64(OFF.seaGpa, true),
        gpaValid: (flags & KVM_EXIT_ARM_SEA_FLAG_GPA_VALID) !== 0n,
      };
    }
    case KVM_EXIT_ARM_NISV:
      return {
        reason: 'arm-nisv',
        esrIss: dv.getBigUint64(OFF.nisvEsrIss, true),
        faultIpa: dv.getBigUint64(OFF.nisvFaultIpa, true),
      };
    case KVM_EXIT_MMIO:
      return {
        reason: 'mmio',
        physAddr: dv.getBigUint64(OFF.mmioPhysAddr, true),
        data: buf.slice(OFF.mmioData, OFF.mmioData + 8),
        len: dv.getUint32(OFF.mmioLen, true),
        isWrite: dv.getUint8(OFF.mmioIsWrite) !== 0,
      };
    default:
      throw new KvmError(
        'SEAWALL_KVM_UNKNOWN_EXIT',
        `kvm_run.exit_reason ${code} is not MMIO, ARM_NISV or ARM_SEA`,
        {
          exitReason: code,
        },
      );
  }
}

/** Writes an exit record and its exit_reason into a kvm_run image (for stand-in vCPUs). */
export function writeExit(buf: Uint8Array, exit: KvmExit): void {
  const dv = view(buf);
  dv.setUint32(OFF.exitReason, EXIT_REASON_CODE[exit.reason], true);
  switch (exit.reason) {
    case 'arm-sea':
      dv.setBigUint64(OFF.seaFlags, exit.flags, true);
      dv.setBigUint64(OFF.seaEsr, exit.esr, true);
      dv.setBigUint64(OFF.seaGva, exit.gva, true);
      dv.setBigUint64(OFF.seaGpa, exit.gpa, true);
      return;
    case 'arm-nisv':
      dv.setBigUint64(OFF.nisvEsrIss, exit.esrIss, true);
      dv.setBigUint64(OFF.nisvFaultIpa, exit.faultIpa, true);
      return;
    case 'mmio':
      dv.setBigUint64(OFF.mmioPhysAddr, exit.physAddr, true);
      buf.set(exit.data.subarray(0, 8), OFF.mmioData);
      dv.setUint32(OFF.mmioLen, exit.len, true);
      dv.setUint8(OFF.mmioIsWrite, exit.isWrite ? 1 : 0);
      return;
    default:
      assertNever(exit, 'exit');
  }
}

/** Builds an arm-sea exit from the fields KVM fills, deriving the validity flags as the kernel does. */
export function seaExit(esr: bigint, gva: bigint, gpa: bigint | null): KvmExit {
  const gvaValid = (esr & FNV_BIT) === 0n;
  return {
    reason: 'arm-sea',
    flags: gpa === null ? 0n : KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
    esr,
    gva: gvaValid ? gva : 0n,
    gvaValid,
    gpa: gpa ?? 0n,
    gpaValid: gpa !== null,
  };
}
