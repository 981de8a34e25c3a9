/**
 * A read-only mapping of a vCPU's `struct kvm_run` page (mmap offset 0 of the vCPU fd). mmap has
 * no address-space check, so a process that received the fd over SCM_RIGHTS can read the kernel's
 * own exit record while the VMM's vCPU thread waits for a verdict (reference §5). Also used on
 * memfd stand-ins, which have the same shape.
 */
import { ftruncateSync } from 'node:fs';
import { KvmError } from './errors.js';
import { decodeExit, type KvmExit } from './exit.js';
import { KvmSyscallError } from './ioctl.js';
import { lastErrno, libc } from './libc.js';
import { SharedMapping } from './shared-mapping.js';

export class RunPage {
  readonly #mapping: SharedMapping;

  private constructor(mapping: SharedMapping) {
    this.#mapping = mapping;
  }

  /**
   * Maps `length` bytes of `fd` at offset 0. Read-only unless `writable` (only stand-in vCPUs
   * in the simulator write their own page).
   */
  static map(fd: number, length: number, writable = false): RunPage {
    return new RunPage(SharedMapping.map(fd, length, writable));
  }

  get fd(): number {
    return this.#mapping.fd;
  }

  get length(): number {
    return this.#mapping.length;
  }

  get writable(): boolean {
    return this.#mapping.writable;
  }

  /** The live bytes of the page. Throws after unmap rather than touching freed memory. */
  get bytes(): Uint8Array {
    if (!this.#mapping.mapped)
      throw new KvmError('SEAWALL_KVM_SYSCALL', `kvm_run page of fd ${this.fd} is unmapped`);
    return this.#mapping.bytes;
  }

  /** Decodes the exit record currently in the page. */
  readExit(): KvmExit {
    return decodeExit(this.bytes);
  }

  get mapped(): boolean {
    return this.#mapping.mapped;
  }

  /** Unmaps; idempotent. The fd itself is the caller's to close. */
  unmap(): void {
    this.#mapping.unmap();
  }
}

/** A memfd sized and shaped like a kvm_run page: the stand-in vCPU fd used where /dev/kvm is absent. */
export function createStandInVcpuFd(name: string, length: number): number {
  const MFD_CLOEXEC = 1;
  const fd = libc().memfdCreate(name, MFD_CLOEXEC);
  if (fd < 0) throw new KvmSyscallError('memfd_create', lastErrno());
  ftruncateSync(fd, length);
  return fd;
}
