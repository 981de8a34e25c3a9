/**
 * The generic Linux `_IOC` encoding (include/uapi/asm-generic/ioctl.h), used by both arm64 and
 * x86-64: dir [31:30], size [29:16], type [15:8], nr [7:0]. Numbers are computed, not typed in,
 * so a wrong struct size shows up as a wrong number (reference §4).
 */
import { KVM_VCPU_EVENTS_SIZE } from './constants.js';
import { KvmError } from './errors.js';

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

function fieldError(field: string, value: number): never {
  throw new KvmError('SEAWALL_KVM_INVALID_ARGUMENT', `_IOC ${field} ${value} out of range`, { field, value });
}

/** Encodes an ioctl request number; throws SEAWALL_KVM_INVALID_ARGUMENT on a field that does not fit. */
export function ioc(dir: number, type: number, nr: number, size: number): number {
  if (dir < 0 || dir > 3) fieldError('dir', dir);
  if (type < 0 || type > 0xff) fieldError('type', type);
  if (nr < 0 || nr > 0xff) fieldError('nr', nr);
  if (size < 0 || size >= 1 << IOC_SIZEBITS) fieldError('size', size);
  // >>> 0 keeps the result an unsigned 32-bit number (dir READ sets bit 31).
  return (
    ((dir << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) | (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)) >>> 0
  );
}
export const io = (type: number, nr: number): number => ioc(IOC_NONE, type, nr, 0);
export const ior = (type: number, nr: number, size: number): number => ioc(IOC_READ, type, nr, size);
export const iow = (type: number, nr: number, size: number): number => ioc(IOC_WRITE, type, nr, size);

/** KVM's ioctl type byte. */
export const KVMIO = 0xae;

/** sizeof(struct kvm_enable_cap): u32 cap, u32 flags, u64 args[4], u8 pad[64]. */
export const KVM_ENABLE_CAP_SIZE = 104;
/** sizeof(struct kvm_one_reg): u64 id, u64 addr. */
export const KVM_ONE_REG_SIZE = 16;

export const KVM_GET_API_VERSION = io(KVMIO, 0x00);
export const KVM_CHECK_EXTENSION = io(KVMIO, 0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(KVMIO, 0x04);
export const KVM_RUN = io(KVMIO, 0x80);
export const KVM_GET_VCPU_EVENTS = ior(KVMIO, 0x9f, KVM_VCPU_EVENTS_SIZE);
export const KVM_SET_VCPU_EVENTS = iow(KVMIO, 0xa0, KVM_VCPU_EVENTS_SIZE);
export const KVM_ENABLE_CAP = iow(KVMIO, 0xa3, KVM_ENABLE_CAP_SIZE);
export const KVM_GET_ONE_REG = iow(KVMIO, 0xab, KVM_ONE_REG_SIZE);
export const KVM_SET_ONE_REG = iow(KVMIO, 0xac, KVM_ONE_REG_SIZE);
