/**
 * What an fd received as "a vCPU fd" really is, before anyone maps it. A real KVM vCPU fd is an
 * anonymous inode named `kvm-vcpu:N` (virt/kvm/kvm_main.c, create_vcpu_fd) whose mmap at offset 0
 * is the kvm_run page. A memfd stand-in (tests, simulator, hosts without /dev/kvm) is only safe to
 * map when it cannot shrink: reading a mapping past the end of a file raises SIGBUS in the reader,
 * so the daemon accepts stand-ins only when sealed with F_SEAL_SHRINK (memfd_create(2), fcntl(2)).
 */
import { fstatSync, ftruncateSync, readlinkSync } from 'node:fs';
import { KvmSyscallError } from './ioctl.js';
import { lastErrno, libc } from './libc.js';
import { libcFd } from './libc-fd.js';

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;

export type VcpuFdKind =
  | { kind: 'kvm-vcpu'; index: number }
  /** A memfd of `size` bytes; `sealed` when it can no longer shrink. */
  | { kind: 'memfd'; size: number; sealed: boolean }
  | { kind: 'other'; what: string };

/** The index a real vCPU fd's /proc link names (`anon_inode:kvm-vcpu:N`), or null for any other link. */
export function kvmVcpuIndexOfLink(link: string): number | null {
  const vcpu = /^anon_inode:kvm-vcpu:(\d+)$/.exec(link);
  return vcpu ? Number(vcpu[1]) : null;
}

/** Classifies `fd` by its /proc link and, for memfds, its size and seals. */
export function classifyVcpuFd(fd: number): VcpuFdKind {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    return { kind: 'other', what: `unreadable fd (${(err as NodeJS.ErrnoException).code})` };
  }
  const index = kvmVcpuIndexOfLink(link);
  if (index !== null) return { kind: 'kvm-vcpu', index };
  if (link.startsWith('/memfd:')) {
    const size = fstatSync(fd).size;
    const seals = libcFd().fcntlInt(fd, F_GET_SEALS, 0);
    return { kind: 'memfd', size, sealed: seals >= 0 && (seals & F_SEAL_SHRINK) !== 0 };
  }
  return { kind: 'other', what: link };
}

/**
 * A memfd shaped like a kvm_run page and sealed against resizing, so a daemon may map it safely:
 * the stand-in vCPU fd a plugin passes where /dev/kvm is absent (tests, simulator).
 */
export function createSealedStandInVcpuFd(name: string, length: number): number {
  const fd = libc().memfdCreate(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw new KvmSyscallError('memfd_create', lastErrno());
  try {
    ftruncateSync(fd, length);
    if (libcFd().fcntlInt(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !== 0)
      throw new KvmSyscallError('fcntl(F_ADD_SEALS)', lastErrno());
    return fd;
  } catch (err) {
    libcFd().close(fd);
    throw err;
  }
}
