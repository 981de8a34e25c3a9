/**
 * SO_PEERCRED on a connected AF_UNIX socket (unix(7)): the pid, uid and gid of the peer process
 * as the kernel recorded them at connect time. kvm/ holds the project's libc binding, so this
 * socket-level call lives beside it; callers get a typed result or a typed error.
 */
import koffi from 'koffi';
import { KvmSyscallError } from './ioctl.js';
import { lastErrno, libc } from './libc.js';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
/** Linux 4.13+: the peer's supplementary groups (socket(7)). */
const SO_PEERGROUPS = 59;
/** Linux 6.5+: a pidfd for the peer process as recorded at connect time (socket(7)). */
const SO_PEERPIDFD = 77;
const ENOPROTOOPT = 92;
const ERANGE = 34;

const Ucred = koffi.struct('seawall_ucred', { pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });

let getsockopt: ((fd: number, level: number, name: number, val: Buffer, len: number[]) => number) | null =
  null;

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * The peer's supplementary groups at connect time (SO_PEERGROUPS). A VMM running as its own user
 * is usually admitted by membership of a group (e.g. seawall-vmm), not by its primary gid.
 * Returns [] where the kernel lacks the option.
 */
export function peerGroups(fd: number): number[] {
  bind();
  let cap = 64;
  for (;;) {
    const buf = Buffer.alloc(cap * 4);
    const len = [buf.length];
    if ((getsockopt as NonNullable<typeof getsockopt>)(fd, SOL_SOCKET, SO_PEERGROUPS, buf, len) === 0) {
      const n = Math.floor((len[0] as number) / 4);
      return Array.from({ length: n }, (_, i) => buf.readUInt32LE(i * 4));
    }
    const errno = lastErrno();
    if (errno === ERANGE && cap < 65536) {
      cap = Math.max(cap * 2, Math.ceil((len[0] as number) / 4));
      continue;
    }
    if (errno === ENOPROTOOPT) return [];
    throw new KvmSyscallError('getsockopt(SO_PEERGROUPS)', errno);
  }
}

function bind(): void {
  if (getsockopt) return;
  libc();
  const lib = koffi.load('libc.so.6');
  getsockopt = lib.func(
    'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)',
  );
}

/** Reads the peer credentials of the AF_UNIX socket `fd`. */
export function peerCred(fd: number): PeerCred {
  if (!getsockopt) {
    libc();
    const lib = koffi.load('libc.so.6');
    getsockopt = lib.func(
      'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)',
    );
  }
  const size = koffi.sizeof(Ucred);
  const buf = Buffer.alloc(size);
  const len = [size];
  if ((getsockopt as NonNullable<typeof getsockopt>)(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0)
    throw new KvmSyscallError('getsockopt(SO_PEERCRED)', lastErrno());
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/**
 * A pidfd for the process that connected to the AF_UNIX socket `fd` (SO_PEERPIDFD). The kernel
 * takes it from the reference it kept at connect(2), so it names that process even when it has
 * since exited and its PID was handed to another: signals through it then fail with ESRCH instead
 * of reaching the newcomer. null where the kernel lacks the option (before 6.5).
 */
export function peerPidfd(fd: number): number | null {
  bind();
  const buf = Buffer.alloc(4);
  const len = [4];
  if ((getsockopt as NonNullable<typeof getsockopt>)(fd, SOL_SOCKET, SO_PEERPIDFD, buf, len) === 0)
    return buf.readInt32LE(0);
  const errno = lastErrno();
  if (errno === ENOPROTOOPT) return null;
  throw new KvmSyscallError('getsockopt(SO_PEERPIDFD)', errno);
}
