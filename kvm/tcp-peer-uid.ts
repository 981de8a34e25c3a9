/**
 * The uid that owns the other end of a TCP connection made on this host, asked of the kernel by
 * one exact-match sock_diag request (sock_diag(7), inet_diag): the socket whose local address is
 * the connection's remote one. What `ss -tne` shows as `uid:`, for one socket, without a dump of
 * every socket nor a parse of /proc/net/tcp. A peer on another host has no socket here: null.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { KvmSyscallError } from './ioctl.js';
import { lastErrno } from './libc.js';
import { libcFd } from './libc-fd.js';

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const IPPROTO_TCP = 6;
const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const MSG_DONTWAIT = 0x40;
const ENOENT = 2;
const TCP_TIME_WAIT = 6;

/** struct nlmsghdr (16) + struct inet_diag_req_v2 (8 + struct inet_diag_sockid, 48). */
const REQUEST_BYTES = 16 + 8 + 48;
/** Where, in an answer, struct inet_diag_msg's idiag_uid is: header, 4 bytes, sockid, 3 u32s. */
const UID_OFFSET = 16 + 4 + 48 + 12;
/** And its idiag_inode, right after: 0 once no process holds the socket. */
const INODE_OFFSET = UID_OFFSET + 4;

export interface TcpEndpoint {
  readonly address: string;
  readonly port: number;
}

/**
 * The uid of the socket at `remote` connected to `local` (both as Node's net.Socket reports them:
 * remoteAddress/remotePort, localAddress/localPort), or null when no process of this network
 * namespace holds that end (a peer on another host, or one whose process closed it or exited).
 * KvmSyscallError when the kernel cannot be asked (no sock_diag).
 */
export function tcpPeerUid(local: TcpEndpoint, remote: TcpEndpoint): number | null {
  const req = request(local, remote);
  if (req === null) return null;
  const fd = diagSocket();
  lastSeq = (lastSeq + 1) >>> 0;
  const seq = lastSeq;
  req.writeUInt32LE(seq, 8);
  try {
    if (libcFd().send(fd, req, 0) !== req.length) throw new KvmSyscallError('send(sock_diag)', lastErrno());
    // The kernel answers an exact-match request while sending it: the answer is already queued.
    // One that a failed call left behind carries another seq and is passed over.
    let n: number;
    do {
      n = libcFd().recv(fd, answer, MSG_DONTWAIT);
      if (n < 0) throw new KvmSyscallError('recv(sock_diag)', lastErrno());
    } while (n >= 16 && answer.readUInt32LE(8) !== seq);
    return uidOf(answer, n, local, remote);
  } catch (err) {
    closeDiagSocket();
    throw err;
  }
}

/** The uid an answer of `n` bytes reports for the socket asked for, or null. */
function uidOf(answer: Buffer, n: number, local: TcpEndpoint, remote: TcpEndpoint): number | null {
  if (n < 16) return null;
  const type = answer.readUInt16LE(4);
  if (type === NLMSG_ERROR) {
    const errno = -answer.readInt32LE(16);
    if (errno === ENOENT) return null;
    throw new KvmSyscallError('sock_diag', errno);
  }
  if (type !== SOCK_DIAG_BY_FAMILY || n < INODE_OFFSET + 4) return null;
  // The answer names the socket it found: it must be the one asked for.
  if (answer.readUInt16BE(20) !== remote.port || answer.readUInt16BE(22) !== local.port) return null;
  // A time-wait socket, or one its process has closed (no inode), is reported as root's: it is
  // no one's any more.
  if (answer.readUInt8(17) === TCP_TIME_WAIT || answer.readUInt32LE(INODE_OFFSET) === 0) return null;
  return answer.readUInt32LE(UID_OFFSET);
}

/**
 * One netlink socket for every lookup, opened on first use and kept: a socket and a close per
 * lookup were half its system calls. Closed after any failure, so the next call starts afresh.
 */
let diagFd = -1;
let lastSeq = 0;
/** An answer is an nlmsghdr and an inet_diag_msg (88 bytes) with no attributes asked for. */
const answer = Buffer.alloc(512);

function diagSocket(): number {
  if (diagFd >= 0) return diagFd;
  const fd = libcFd().socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) throw new KvmSyscallError('socket(AF_NETLINK, NETLINK_SOCK_DIAG)', lastErrno());
  diagFd = fd;
  return fd;
}

function closeDiagSocket(): void {
  if (diagFd >= 0) libcFd().close(diagFd);
  diagFd = -1;
}

/** The request, or null for an address that is not IPv4 or IPv6 text. */
function request(local: TcpEndpoint, remote: TcpEndpoint): Buffer | null {
  const v4 = isIPv4(remote.address) && isIPv4(local.address);
  if (!v4 && !(isIPv6(remote.address) && isIPv6(local.address))) return null;
  const buf = Buffer.alloc(REQUEST_BYTES);
  buf.writeUInt32LE(REQUEST_BYTES, 0);
  buf.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  buf.writeUInt16LE(NLM_F_REQUEST, 6);
  buf.writeUInt8(v4 ? AF_INET : AF_INET6, 16);
  buf.writeUInt8(IPPROTO_TCP, 17);
  buf.writeUInt32LE(0xffffffff, 20); // every state
  // The socket sought: its source is the connection's remote end, its destination our end.
  buf.writeUInt16BE(remote.port, 24);
  buf.writeUInt16BE(local.port, 26);
  addressBytes(remote.address, v4).copy(buf, 28);
  addressBytes(local.address, v4).copy(buf, 44);
  // idiag_if 0 (any); idiag_cookie INET_DIAG_NOCOOKIE twice: match by address alone.
  buf.writeUInt32LE(0xffffffff, 64);
  buf.writeUInt32LE(0xffffffff, 68);
  return buf;
}

/** An address in network order: 4 bytes for IPv4, 16 for IPv6 (IPv4-mapped ones included). */
function addressBytes(address: string, v4: boolean): Buffer {
  if (v4) return Buffer.from(address.split('.').map(Number));
  const out = Buffer.alloc(16);
  let text = address;
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  // A trailing dotted quad (::ffff:127.0.0.1) is the last two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad !== null) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
  for (let i = 0; i < 8; i++) out.writeUInt16BE((all[i] ?? 0) & 0xffff, i * 2);
  return out;
}
