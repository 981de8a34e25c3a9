/**
 * Errors raised by the kvm/ layer. Callers branch on `code`, never on message text.
 * See ../shared/reference/kvm-arm64-sea.md for the kernel rules each code mirrors.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

export type KvmErrorCode =
  /** A value given as an ESR is not a 64-bit unsigned integer. */
  | 'SEAWALL_KVM_ESR_INVALID'
  /** ISS fields that cannot be encoded (bits outside [24:0], SET without FSC 0x10, …). */
  | 'SEAWALL_KVM_ISS_INVALID'
  /** A kvm_run buffer too short for the record its exit reason names. */
  | 'SEAWALL_KVM_SHORT_BUFFER'
  /** exit_reason is not one seawall handles (MMIO, ARM_NISV, ARM_SEA). */
  | 'SEAWALL_KVM_UNKNOWN_EXIT'
  /** The kernel would reject this kvm_vcpu_events image with EINVAL. */
  | 'SEAWALL_KVM_EVENTS_REJECTED'
  /** The host's ABI cannot express this injection (e.g. an instruction abort on a merged kernel). */
  | 'SEAWALL_KVM_ABI_UNSUPPORTED'
  /** A system call failed; `errno` says why. */
  | 'SEAWALL_KVM_SYSCALL'
  /** A VM or vCPU ioctl from a process other than the VM's creator: the kernel answers EIO. */
  | 'SEAWALL_KVM_FOREIGN_PROCESS'
  /** libc or koffi could not be loaded on this platform. */
  | 'SEAWALL_KVM_UNAVAILABLE'
  /** A caller passed a value outside its field (an `_IOC` field that does not fit). */
  | 'SEAWALL_KVM_INVALID_ARGUMENT'
  /** A value outside a closed union reached an exhaustive switch (from the wire or the kernel). */
  | 'SEAWALL_KVM_UNHANDLED_VALUE';

export class KvmError extends SeawallError<KvmErrorCode> {
  override readonly name = 'KvmError';
}

export const isKvmError = errorGuard(KvmError);
