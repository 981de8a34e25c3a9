/**
 * The host's page size, asked of the C library rather than assumed: arm64 servers run 4, 16 and
 * 64 KiB pages, and a vCPU's mapping is a whole number of them (KVM_GET_VCPU_MMAP_SIZE).
 */
import { KVM_RUN_SIZE_ARM64, KVM_VCPU_MMAP_PAGES_ARM64 } from './constants.js';
import { KvmError } from './errors.js';
import { libc } from './libc.js';

/** sysconf(_SC_PAGESIZE); the name is 30 in glibc on every Linux architecture. */
const SC_PAGESIZE = 30;

let cached: number | null = null;

export function hostPageSize(): number {
  if (cached !== null) return cached;
  const size = libc().sysconf(SC_PAGESIZE);
  if (!Number.isInteger(size) || size < 4096 || (size & (size - 1)) !== 0)
    throw new KvmError('SEAWALL_KVM_UNAVAILABLE', `sysconf(_SC_PAGESIZE) answered ${size}`);
  cached = size;
  return size;
}

/**
 * What an arm64 kernel answers to KVM_GET_VCPU_MMAP_SIZE on a host with `pageSize` pages: two
 * pages (kvm_run, then the coalesced-MMIO ring) — 8192 with 4 KiB pages, 128 KiB with 64 KiB.
 * For use only where /dev/kvm cannot be asked.
 */
export function defaultVcpuMmapSize(pageSize: number = hostPageSize()): number {
  const pages = Math.max(KVM_VCPU_MMAP_PAGES_ARM64, Math.ceil(KVM_RUN_SIZE_ARM64 / pageSize));
  return pages * pageSize;
}
