/**
 * The one bound on a Unix socket's path: `struct sockaddr_un`'s `sun_path[108]`, which the kernel
 * reads as a NUL-terminated string. Node's net module does not refuse a longer path: it binds or
 * connects to the path cut to 107 bytes — a socket file made, or a daemon reached, somewhere the
 * operator never named. Every socket seawall binds or connects to by path is checked here first.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { KvmSyscallError } from './ioctl.js';
import { ERRNO, lastErrno } from './libc.js';
import { libcFd } from './libc-fd.js';

export const AF_UNIX = 1;
/** sizeof(struct sockaddr_un): sa_family_t + char sun_path[108]. */
export const SOCKADDR_UN_SIZE = 110;

/**
 * The file a Unix socket `fd` is bound to (getsockname(2)), or null when it has none: unnamed, in
 * the abstract namespace, or not AF_UNIX. What a socket systemd passed in is (ListenStream=):
 * Node's `server.address()` is null for a server listening on an fd.
 */
export function boundSocketPath(fd: number): string | null {
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(addr.length, 0);
  if (libcFd().getsockname(fd, addr, len) !== 0) throw new KvmSyscallError('getsockname', lastErrno());
  const n = Math.min(len.readUInt32LE(0), addr.length);
  if (addr.readUInt16LE(0) !== AF_UNIX || n <= 2 || addr[2] === 0) return null;
  const path = addr.subarray(2, n);
  const nul = path.indexOf(0);
  return (nul < 0 ? path : path.subarray(0, nul)).toString('utf8');
}

/** The most bytes a Unix socket's path may have. */
export const SOCKET_PATH_MAX = 107;

/** The length in bytes of `path` when no Unix socket can have it (0, or past SOCKET_PATH_MAX); else null. */
export function unusableSocketPathBytes(path: string): number | null {
  const bytes = Buffer.byteLength(path, 'utf8');
  return bytes === 0 || bytes > SOCKET_PATH_MAX ? bytes : null;
}

/** Throws ENAMETOOLONG (or EINVAL for an empty path), naming the path, when no socket can have it. */
export function checkSocketPath(path: string, op: 'bind' | 'connect'): void {
  const bytes = unusableSocketPathBytes(path);
  if (bytes === null) return;
  if (bytes === 0)
    throw new KvmSyscallError(op, ERRNO.EINVAL as number, 'a Unix socket path cannot be empty');
  throw new KvmSyscallError(
    op,
    ERRNO.ENAMETOOLONG as number,
    `socket path ${path} is ${bytes} bytes; a Unix socket's path holds at most ${SOCKET_PATH_MAX}`,
  );
}

/**
 * Clears `path` for a bind, once the caller has found nobody serving it: a socket file left there is
 * unlinked; nothing there is fine; anything else — a regular file, a directory, a symlink — is
 * refused and left alone. connect(2) to a file that is not a socket fails as to a dead socket
 * (ECONNREFUSED), so a mistyped socket path would otherwise delete the store or a config.
 */
export function removeStaleSocket(path: string): void {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket)
    throw new KvmSyscallError(
      'bind',
      ERRNO.EEXIST as number,
      `${path} exists and is not a socket: refusing to replace it (is the socket path mistyped?)`,
    );
  unlinkSync(path);
}

/**
 * Before a bind at `path`: 'served' when a process accepts connections there (the caller refuses
 * to start); else 'free', a stale socket left by a dead process removed (removeStaleSocket). Other
 * errors of the probe reject.
 */
export function claimSocketPath(path: string): Promise<'served' | 'free'> {
  return new Promise((resolve, reject) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve('served');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return resolve('free');
      if (err.code !== 'ECONNREFUSED') return reject(err);
      try {
        removeStaleSocket(path);
        resolve('free');
      } catch (e) {
        reject(e);
      }
    });
  });
}
