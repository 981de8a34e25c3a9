/**
 * The one bound on a Unix socket's path: `struct sockaddr_un`'s `sun_path[108]`, which the kernel
 * reads as a NUL-terminated string. Node's net module does not refuse a longer path: it binds or
 * connects to the path cut to 107 bytes — a socket file made, or a daemon reached, somewhere the
 * operator never named. Every socket seawall binds or connects to by path is checked here first.
 */
import { KvmSyscallError } from './ioctl.js';
import { ERRNO } from './libc.js';

/** The most bytes a Unix socket's path may have. */
export const SOCKET_PATH_MAX = 107;

/** Throws ENAMETOOLONG (or EINVAL for an empty path), naming the path, when no socket can have it. */
export function checkSocketPath(path: string, op: 'bind' | 'connect'): void {
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes === 0)
    throw new KvmSyscallError(op, ERRNO.EINVAL as number, 'a Unix socket path cannot be empty');
  if (bytes > SOCKET_PATH_MAX)
    throw new KvmSyscallError(
      op,
      ERRNO.ENAMETOOLONG as number,
      `socket path ${path} is ${bytes} bytes; a Unix socket's path holds at most ${SOCKET_PATH_MAX}`,
    );
}
