/**
 * ioctl wrappers that return typed results or throw typed errors. The one errno that needs an
 * explanation is EIO on a VM or vCPU fd: the kernel refuses every such ioctl from a process
 * other than the VM's creator (`kvm->mm != current->mm`, reference §5) — which is why the daemon
 * builds bytes and the plugin applies them.
 */
import { KvmError } from './errors.js';
import { ERRNO, errnoName, lastErrno, libc } from './libc.js';

/** What kind of fd an ioctl was issued on; decides how EIO is explained. */
export type FdKind = 'system' | 'vm' | 'vcpu';

export class KvmSyscallError extends KvmError {
  readonly errno: number;
  readonly syscall: string;
  constructor(
    syscall: string,
    errno: number,
    message?: string,
    code: 'SEAWALL_KVM_SYSCALL' | 'SEAWALL_KVM_FOREIGN_PROCESS' = 'SEAWALL_KVM_SYSCALL',
  ) {
    super(code, message ?? `${syscall} failed: ${errnoName(errno)} (${libc().strerror(errno)})`, {
      syscall,
      errno,
      errnoName: errnoName(errno),
    });
    this.errno = errno;
    this.syscall = syscall;
  }
}

function fail(name: string, fdKind: FdKind): never {
  const errno = lastErrno();
  if (errno === ERRNO.EIO && fdKind !== 'system') {
    throw new KvmSyscallError(
      name,
      errno,
      `${name} on a ${fdKind} fd returned EIO: KVM accepts ${fdKind} ioctls only from the process that ` +
        'created the VM. A daemon holding this fd through SCM_RIGHTS may mmap kvm_run but must hand the ' +
        'request to the VMM plugin to issue on its vCPU thread.',
      'SEAWALL_KVM_FOREIGN_PROCESS',
    );
  }
  throw new KvmSyscallError(name, errno);
}

/** ioctl with an integer argument (or none); returns the kernel's non-negative answer. */
export function ioctlValue(fd: number, request: number, name: string, fdKind: FdKind, arg = 0): number {
  const r = libc().ioctlInt(fd, request, arg);
  if (r < 0) fail(name, fdKind);
  return r;
}

/** ioctl with a pointer to `buf` (read, written or both by the kernel). */
export function ioctlBuffer(fd: number, request: number, buf: Buffer, name: string, fdKind: FdKind): number {
  const r = libc().ioctlPtr(fd, request, buf);
  if (r < 0) fail(name, fdKind);
  return r;
}
