/**
 * A MAP_SHARED mapping of a file descriptor (mmap(2)): reads see the file's (or device's) pages
 * directly, and writes land in the kernel's page cache with no system call — which is why they
 * survive the process being killed. Used for vCPU kvm_run pages (read-only) and for the event
 * store's write-ahead area (read-write).
 */
import { KvmError } from './errors.js';
import { KvmSyscallError } from './ioctl.js';
import { lastErrno, libc, pointerAddress, viewOf } from './libc.js';

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_FAILED = (1n << 64n) - 1n;

export class SharedMapping {
  readonly fd: number;
  readonly length: number;
  readonly writable: boolean;
  #ptr: unknown;
  #bytes: Buffer | null;

  private constructor(fd: number, length: number, ptr: unknown, writable: boolean) {
    this.fd = fd;
    this.length = length;
    this.writable = writable;
    this.#ptr = ptr;
    this.#bytes = Buffer.from(viewOf(ptr, length));
  }

  /** Maps `length` bytes of `fd` at offset 0, read-only unless `writable`. */
  static map(fd: number, length: number, writable = false): SharedMapping {
    const ptr = libc().mmap(null, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (ptr === null || pointerAddress(ptr) === MAP_FAILED) throw new KvmSyscallError('mmap', lastErrno());
    return new SharedMapping(fd, length, ptr, writable);
  }

  /** The live bytes. Throws after unmap rather than touching freed memory. */
  get bytes(): Buffer {
    if (!this.#bytes) throw new KvmError('SEAWALL_KVM_SYSCALL', `mapping of fd ${this.fd} is unmapped`);
    return this.#bytes;
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
