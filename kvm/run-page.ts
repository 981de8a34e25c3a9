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
import { lastErrno, libc, pointerAddress, viewOf } from './libc.js';

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_FAILED = (1n << 64n) - 1n;

export class RunPage {
  readonly fd: number;
  readonly length: number;
  readonly writable: boolean;
  #ptr: unknown;
  #bytes: Uint8Array | null;

  private constructor(fd: number, length: number, ptr: unknown, writable: boolean) {
    this.fd = fd;
    this.length = length;
    this.#ptr = ptr;
    this.#bytes = new Uint8Array(viewOf(ptr, length));
    this.writable = writable;
  }

  /**
   * Maps `length` bytes of `fd` at offset 0. Read-only unless `writable` (only stand-in vCPUs
   * in the simulator write their own page).
   */
  static map(fd: number, length: number, writable = false): RunPage {
    const ptr = libc().mmap(null, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (ptr === null || pointerAddress(ptr) === MAP_FAILED) throw new KvmSyscallError('mmap', lastErrno());
    return new RunPage(fd, length, ptr, writable);
  }

  /** The live bytes of the page. Throws after unmap rather than touching freed memory. */
  get bytes(): Uint8Array {
    if (!this.#bytes) throw new KvmError('SEAWALL_KVM_SYSCALL', `kvm_run page of fd ${this.fd} is unmapped`);
    return this.#bytes;
  }

  /** Decodes the exit record currently in the page. */
  readExit(): KvmExit {
    return decodeExit(this.bytes);
  }

  get mapped(): boolean {
    return this.#bytes !== null;
  }

  /** Unmaps; idempotent. The fd itself is the caller's to close. */
  unmap(): void {
    if (!this.#bytes) return;
    this.#bytes = null;
    if (libc().munmap(this.#ptr, this.length) !== 0) throw new KvmSyscallError('munmap', lastErrno());
    this.#ptr = null;
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
