/**
 * The libc entry points for fd-level work that Node does not offer: AF_UNIX SOCK_SEQPACKET sockets
 * with SCM_RIGHTS (socket(7), unix(7), cmsg(3)), pidfds (pidfd_open(2), pidfd_send_signal(2)) and
 * poll(2). Bound through koffi on first use, beside libc.ts; nothing outside kvm/ sees these.
 */
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { KvmError } from './errors.js';
import { libc } from './libc.js';

/**
 * Generic syscall numbers (include/uapi/asm-generic/unistd.h): since 5.1 every architecture,
 * x86-64 and arm64 included, shares numbers from 424 on, so one table serves both.
 */
export const SYS_PIDFD_SEND_SIGNAL = 424;
export const SYS_PIDFD_OPEN = 434;

export interface LibcFd {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, flags: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  /** getsockname(2): `len` holds the size of `addr` in, the address's length out (4 bytes, LE). */
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  /** `msg` is the address of a struct msghdr in native memory (see scm-rights.ts). */
  recvmsg(fd: number, msg: unknown, flags: number): number;
  sendmsg(fd: number, msg: unknown, flags: number): number;
  send(fd: number, buf: Buffer, flags: number): number;
  recv(fd: number, buf: Buffer, flags: number): number;
  close(fd: number): number;
  dup2(oldfd: number, newfd: number): number;
  /** poll(2) on one fd; `pfd` is an 8-byte struct pollfd. */
  poll(pfd: Buffer, nfds: number, timeoutMs: number): number;
  fcntlInt(fd: number, cmd: number, arg: number): number;
  pidfdOpen(pid: number, flags: number): number;
  pidfdSendSignal(pidfd: number, sig: number, flags: number): number;
}

let cached: LibcFd | null = null;

/** Loads the bindings once; SEAWALL_KVM_UNAVAILABLE where the layouts assumed here do not hold. */
export function libcFd(): LibcFd {
  if (cached) return cached;
  libc(); // same library, same failure mode when it is missing
  if (koffi.sizeof('void *') !== 8 || koffi.sizeof('size_t') !== 8 || process.platform !== 'linux') {
    throw new KvmError('SEAWALL_KVM_UNAVAILABLE', 'fd passing is implemented for 64-bit Linux only');
  }
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const bind = lib.func('int bind(int fd, const void *addr, uint32_t len)');
  const listen = lib.func('int listen(int fd, int backlog)');
  const accept4 = lib.func('int accept4(int fd, void *addr, void *len, int flags)');
  const connect = lib.func('int connect(int fd, const void *addr, uint32_t len)');
  const getsockname = lib.func('int getsockname(int fd, void *addr, void *len)');
  const recvmsg = lib.func('long recvmsg(int fd, void *msg, int flags)');
  const sendmsg = lib.func('long sendmsg(int fd, const void *msg, int flags)');
  const send = lib.func('long send(int fd, const void *buf, size_t len, int flags)');
  const recv = lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)');
  const close = lib.func('int close(int fd)');
  const dup2 = lib.func('int dup2(int oldfd, int newfd)');
  const poll = lib.func('int poll(void *fds, unsigned long nfds, int timeout)');
  // syscall(2) is variadic; glibc 2.36 has pidfd_open too, but older libcs do not.
  const syscall = lib.func('long syscall(long number, ...)');
  const fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
  cached = {
    socket: (d, t, p) => socket(d, t, p) as number,
    bind: (fd, addr, len) => bind(fd, addr, len) as number,
    listen: (fd, backlog) => listen(fd, backlog) as number,
    accept4: (fd, flags) => accept4(fd, null, null, flags) as number,
    connect: (fd, addr, len) => connect(fd, addr, len) as number,
    getsockname: (fd, addr, len) => getsockname(fd, addr, len) as number,
    recvmsg: (fd, msg, flags) => Number(recvmsg(fd, msg, flags)),
    sendmsg: (fd, msg, flags) => Number(sendmsg(fd, msg, flags)),
    send: (fd, buf, flags) => Number(send(fd, buf, buf.length, flags)),
    recv: (fd, buf, flags) => Number(recv(fd, buf, buf.length, flags)),
    close: (fd) => close(fd) as number,
    dup2: (oldfd, newfd) => dup2(oldfd, newfd) as number,
    poll: (pfd, nfds, timeout) => poll(pfd, nfds, timeout) as number,
    fcntlInt: (fd, cmd, arg) => fcntl(fd, cmd, 'int', arg) as number,
    pidfdOpen: (pid, flags) => Number(syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', flags)),
    pidfdSendSignal: (pidfd, sig, flags) =>
      Number(syscall(SYS_PIDFD_SEND_SIGNAL, 'int', pidfd, 'int', sig, 'void *', null, 'unsigned int', flags)),
  };
  return cached;
}

/** Points `fd` at /dev/null (dup2(2)), so it no longer names what it did; false when that failed. */
export function pointAtDevNull(fd: number): boolean {
  let devNull = -1;
  try {
    devNull = openSync('/dev/null', 'r+');
    return libcFd().dup2(devNull, fd) === fd;
  } catch {
    return false;
  } finally {
    if (devNull >= 0) closeSync(devNull);
  }
}

/** poll(2)'s event bits. */
export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;

/** poll(2) of one fd with a zero timeout: the events it reports now (0 when none). */
export function pollNow(fd: number, events: number): number {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events, 4);
  return libcFd().poll(pfd, 1, 0) > 0 ? pfd.readInt16LE(6) : 0;
}

/**
 * Whether whoever reads what is written to `fd` is gone: a pipe with no reader left (POLLERR), a
 * socket whose peer closed or a terminal hung up (POLLHUP). A file or /dev/null never is.
 */
export function readerGone(fd: number): boolean {
  return (pollNow(fd, 0) & (POLLERR | POLLHUP)) !== 0;
}

/**
 * Whether `fd` is readable right now (poll(2) with a zero timeout). For a pidfd, readable means
 * the process has exited (pidfd_open(2)); for a socket, data or EOF is waiting.
 */
export function readableNow(fd: number): boolean {
  return (pollNow(fd, POLLIN) & POLLIN) !== 0;
}

/** A readiness watch on the Node event loop (libuv uv_poll through koffi). */
export interface FdWatch {
  /** Stops watching; must be called before the fd is closed. Idempotent. */
  close(): void;
  unref(): void;
}

interface KoffiPollHandle {
  stop(): void;
  close(): void;
  unref(): void;
}

/**
 * Calls `onReadable` whenever `fd` is readable (or hung up), on the event loop — no timers, no
 * threads. koffi 2.16's `koffi.node.poll` wraps libuv's uv_poll (epoll on Linux), which accepts
 * any pollable fd: sockets and pidfds alike. Its callback receives `(status, events)`.
 */
export function watchReadable(fd: number, onReadable: (err: boolean) => void): FdWatch {
  const poll = (
    koffi as unknown as { node: { poll: (fd: number, o: object, cb: Function) => KoffiPollHandle } }
  ).node.poll;
  const handle = poll(fd, { readable: true, disconnect: true }, (status: number) => onReadable(status < 0));
  let open = true;
  return {
    close() {
      if (!open) return;
      open = false;
      handle.close();
    },
    unref() {
      handle.unref();
    },
  };
}
