/**
 * Does anything listen on an AF_UNIX datagram socket path? Answers the journald question "is
 * /run/systemd/journal/socket alive?" without sending an entry.
 *
 * A socket file can outlive its server (journald killed without cleanup), and sd_journal_sendv(3)
 * silently returns 0 when the path is missing, so neither stat(2) nor a test send can tell.
 * connect(2) can: ECONNREFUSED for a dead socket, ENOENT for none (unix(7)). Node's `net` only
 * connects stream sockets, hence libc through koffi.
 */
import { endianness } from 'node:os';
import koffi from 'koffi';

const AF_UNIX = 1;
// SOCK_DGRAM | SOCK_CLOEXEC (socket(2)): the probe fd must not leak into a forked child.
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
// sizeof(struct sockaddr_un): sa_family_t then char sun_path[108] (unix(7)).
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = 108;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc === undefined) {
    try {
      const lib = koffi.load('libc.so.6');
      libc = {
        socket: lib.func('int socket(int domain, int type, int protocol)'),
        connect: lib.func('int connect(int fd, const void *addr, uint32_t len)'),
        close: lib.func('int close(int fd)'),
      };
    } catch {
      libc = null;
    }
  }
  return libc;
}

/** The answer of {@link probeUnixDatagram}; `unknown` when libc could not be called. */
export type UnixSocketProbe = 'listening' | 'absent' | 'refused' | 'unknown';

/**
 * Connects a datagram socket to `path` and closes it again.
 *
 * @returns `listening` when connect(2) succeeds, `absent` for ENOENT/ENOTDIR, `refused` for
 *   ECONNREFUSED (a stale socket file) or any other failure.
 */
export function probeUnixDatagram(path: string): UnixSocketProbe {
  const c = loadLibc();
  if (c === null) return 'unknown';
  const pathBytes = Buffer.from(path);
  if (pathBytes.length >= SUN_PATH_MAX) return 'refused';
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  if (endianness() === 'LE') addr.writeUInt16LE(AF_UNIX, 0);
  else addr.writeUInt16BE(AF_UNIX, 0);
  pathBytes.copy(addr, 2);
  const fd = c.socket(AF_UNIX, SOCK_DGRAM_CLOEXEC, 0);
  if (fd < 0) return 'unknown';
  try {
    if (c.connect(fd, addr, 2 + pathBytes.length + 1) === 0) return 'listening';
    const errno = koffi.errno();
    return errno === 2 || errno === 20 ? 'absent' : 'refused';
  } finally {
    c.close(fd);
  }
}
