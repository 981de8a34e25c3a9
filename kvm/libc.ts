/**
 * The few libc entry points kvm/ needs, bound through koffi on first use. Nothing outside kvm/
 * sees these: callers use ioctl.ts / run-page.ts, which turn errno into typed errors.
 */
import koffi from 'koffi';
import { KvmError } from './errors.js';

export interface Libc {
  ioctlPtr(fd: number, request: number, arg: Buffer | null): number;
  ioctlInt(fd: number, request: number, arg: number): number;
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): unknown;
  munmap(addr: unknown, length: number): number;
  memfdCreate(name: string, flags: number): number;
  strerror(errnum: number): string;
  sysconf(name: number): number;
  /** sched_setscheduler(2) with priority 0 (the only one SCHED_OTHER and SCHED_IDLE take). */
  schedSetscheduler(pid: number, policy: number): number;
  flock(fd: number, operation: number): number;
  /** prctl(2) with its four unsigned long arguments. */
  prctl(option: number, a2: number, a3: number, a4: number, a5: number): number;
  /** _exit(2): ends the process at once, without exit(3)'s wait for threads. */
  exitNow(status: number): void;
}

let cached: Libc | null = null;

/** Loads libc once; SEAWALL_KVM_UNAVAILABLE when that is impossible on this platform. */
export function libc(): Libc {
  if (cached) return cached;
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load('libc.so.6');
  } catch (err) {
    throw new KvmError('SEAWALL_KVM_UNAVAILABLE', `cannot load libc.so.6: ${(err as Error).message}`);
  }
  // ioctl is variadic in C; declaring it so keeps the call correct on every ABI koffi supports.
  const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)');
  const mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
  const munmap = lib.func('int munmap(void *addr, size_t length)');
  const memfd = lib.func('int memfd_create(const char *name, unsigned int flags)');
  const strerror = lib.func('const char *strerror(int errnum)');
  const sysconf = lib.func('long sysconf(int name)');
  // struct sched_param is one int, sched_priority.
  const setscheduler = lib.func('int sched_setscheduler(int pid, int policy, int *param)');
  const flock = lib.func('int flock(int fd, int operation)');
  // prctl is variadic in C, as ioctl.
  const prctl = lib.func('int prctl(int option, ...)');
  const exit = lib.func('void _exit(int status)');
  cached = {
    ioctlPtr: (fd, request, arg) => ioctl(fd, request, 'void *', arg) as number,
    ioctlInt: (fd, request, arg) => ioctl(fd, request, 'unsigned long', arg) as number,
    mmap: (addr, length, prot, flags, fd, offset) => mmap(addr, length, prot, flags, fd, offset),
    munmap: (addr, length) => munmap(addr, length) as number,
    memfdCreate: (name, flags) => memfd(name, flags) as number,
    strerror: (errnum) => strerror(errnum) as string,
    sysconf: (name) => Number(sysconf(name)),
    schedSetscheduler: (pid, policy) => setscheduler(pid, policy, [0]) as number,
    flock: (fd, operation) => flock(fd, operation) as number,
    prctl: (option, a2, a3, a4, a5) => {
      const ul = 'unsigned long';
      return prctl(option, ul, a2, ul, a3, ul, a4, ul, a5) as number;
    },
    exitNow: (status) => exit(status),
  };
  return cached;
}

/** errno of the last call made through koffi on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Linux errno numbers by name, from koffi's table for this platform. */
export const ERRNO: Readonly<Record<string, number>> = koffi.os.errno;

export function errnoName(errnum: number): string {
  for (const [name, value] of Object.entries(ERRNO)) if (value === errnum) return name;
  return `errno ${errnum}`;
}

/** Address of a pointer returned by koffi, for MAP_FAILED checks. */
export function pointerAddress(ptr: unknown): bigint {
  return ptr === null ? 0n : koffi.address(ptr);
}

/** An ArrayBuffer over native memory (no copy). */
export function viewOf(ptr: unknown, length: number): ArrayBuffer {
  return koffi.view(ptr, length);
}
