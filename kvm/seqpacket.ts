/**
 * AF_UNIX SOCK_SEQPACKET sockets (unix(7)) for the vCPU attach channel, which Node's `net` cannot
 * open: record boundaries are kept by the kernel, so one sendmsg is one message, and file
 * descriptors travel beside it as SCM_RIGHTS (see scm-rights.ts). Every fd here is non-blocking
 * and close-on-exec; readiness comes from `watchReadable` (libuv through koffi), not timers.
 */
import { chmodSync } from 'node:fs';
import { KvmSyscallError } from './ioctl.js';
import { ERRNO, errnoName, lastErrno } from './libc.js';
import { libcFd, POLLHUP, POLLIN, pollNow } from './libc-fd.js';
import { AF_UNIX, checkSocketPath, removeStaleSocket, SOCKADDR_UN_SIZE } from './socket-path.js';

const SOCK_SEQPACKET = 5;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

function sockaddrUn(path: string, op: 'bind' | 'connect'): Buffer {
  checkSocketPath(path, op);
  const bytes = Buffer.from(path, 'utf8');
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  return addr;
}

function newSocket(): number {
  const fd = libcFd().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new KvmSyscallError('socket(AF_UNIX, SOCK_SEQPACKET)', lastErrno());
  return fd;
}

/** Closes an fd this layer (or SCM_RIGHTS) produced; errors other than EBADF are not actionable. */
export function closeFd(fd: number): void {
  if (fd >= 0) libcFd().close(fd);
}

/**
 * Creates, binds and listens on a SEQPACKET socket at `path` (a stale socket file is replaced —
 * callers check first that nobody serves it) with file mode `mode`. Returns the listening fd.
 */
export function listenSeqpacket(path: string, mode: number, backlog = 64): number {
  const addr = sockaddrUn(path, 'bind');
  const fd = newSocket();
  try {
    removeStaleSocket(path);
    if (libcFd().bind(fd, addr, addr.length) !== 0) throw new KvmSyscallError('bind', lastErrno());
    chmodSync(path, mode);
    if (libcFd().listen(fd, backlog) !== 0) throw new KvmSyscallError('listen', lastErrno());
    return fd;
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** Accepts one pending connection (non-blocking, close-on-exec); null when none is waiting. */
export function acceptSeqpacket(listenFd: number): number | null {
  const fd = libcFd().accept4(listenFd, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) return fd;
  const errno = lastErrno();
  // EAGAIN: nothing waiting. ECONNABORTED: the peer left between SYN and accept; try again later.
  if (errno === ERRNO.EAGAIN || errno === ERRNO.ECONNABORTED || errno === ERRNO.EINTR) return null;
  throw new KvmSyscallError('accept4', errno);
}

/**
 * Connects a SEQPACKET socket to `path`. Unix-domain connects complete at once; EAGAIN means the
 * listener's backlog is full and is reported as an error like any other.
 */
export function connectSeqpacket(path: string): number {
  const addr = sockaddrUn(path, 'connect');
  const fd = newSocket();
  if (libcFd().connect(fd, addr, addr.length) !== 0) {
    const errno = lastErrno();
    closeFd(fd);
    throw new KvmSyscallError('connect', errno, `connect ${path}: ${errnoName(errno)}`);
  }
  return fd;
}

/**
 * Whether the peer of a connected Unix socket (SEQPACKET, or a stream: the plugin socket) has
 * closed it, though what it sent before may still wait to be read: such a peer takes no replies.
 * The kernel marks a connected stream or seqpacket Unix socket shut down both ways (POLLHUP) when
 * its peer is released; a peer's shutdown(SHUT_WR) alone is not a hang-up (it may still read
 * replies).
 */
export function peerHungUp(fd: number): boolean {
  return (pollNow(fd, POLLIN) & POLLHUP) !== 0;
}
