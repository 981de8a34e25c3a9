/**
 * sendmsg(2)/recvmsg(2) with file descriptors as SCM_RIGHTS ancillary data (unix(7), cmsg(3)).
 * struct msghdr, struct iovec and the cmsg headers are laid out by hand in one native scratch
 * block (LP64 Linux: x86-64 and arm64 agree), so a call allocates nothing and koffi never has to
 * guess how to marshal nested pointers. Every fd the kernel installs is either returned or closed:
 * a truncated or malformed message never leaks descriptors.
 */
import koffi from 'koffi';
import { KvmSyscallError } from './ioctl.js';
import { ERRNO, lastErrno } from './libc.js';
import { libcFd } from './libc-fd.js';

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** Most descriptors one message may carry; the kernel drops the rest and flags MSG_CTRUNC. */
export const SCM_MAX_FDS = 8;
/** Largest message body this layer sends or receives. */
export const SCM_MAX_BYTES = 512;

// struct msghdr (56 bytes): name@0 namelen@8 iov@16 iovlen@24 control@32 controllen@40 flags@48.
const MSG_OFF = 0;
const IOV_OFF = 64; // struct iovec: base@0 len@8
const CMSG_HDR = 16; // struct cmsghdr: len(size_t)@0 level(int)@8 type(int)@12, data@16
const CTRL_OFF = 96;
const CTRL_LEN = CMSG_HDR + 4 * SCM_MAX_FDS;
const DATA_OFF = 160;
const BLOCK = DATA_OFF + SCM_MAX_BYTES;

interface Scratch {
  ptr: unknown;
  base: bigint;
  dv: DataView;
  bytes: Uint8Array;
}
let scratch: Scratch | null = null;

function block(): Scratch {
  if (scratch) return scratch;
  libcFd();
  const ptr = koffi.alloc('uint8_t', BLOCK);
  const buf = koffi.view(ptr, BLOCK);
  scratch = { ptr, base: koffi.address(ptr), dv: new DataView(buf), bytes: new Uint8Array(buf) };
  return scratch;
}

function prepare(s: Scratch, dataLen: number, controlLen: number): void {
  s.bytes.fill(0, 0, DATA_OFF);
  s.dv.setBigUint64(MSG_OFF + 16, s.base + BigInt(IOV_OFF), true);
  s.dv.setBigUint64(MSG_OFF + 24, 1n, true);
  s.dv.setBigUint64(MSG_OFF + 32, controlLen === 0 ? 0n : s.base + BigInt(CTRL_OFF), true);
  s.dv.setBigUint64(MSG_OFF + 40, BigInt(controlLen), true);
  s.dv.setBigUint64(IOV_OFF, s.base + BigInt(DATA_OFF), true);
  s.dv.setBigUint64(IOV_OFF + 8, BigInt(dataLen), true);
}

/** One received message. */
export interface ScmMessage {
  /** A copy of the message body. */
  data: Buffer;
  /** Descriptors received with it (close-on-exec); the caller owns them. */
  fds: number[];
  /** The body or the descriptors did not fit (the kernel discards descriptors past the buffer: MSG_CTRUNC). */
  truncated: boolean;
}

/**
 * Receives one message without blocking. null: nothing waiting. 'eof': the peer closed (any
 * descriptors that came with a zero-length read are closed).
 */
export function recvWithFds(fd: number): ScmMessage | 'eof' | null {
  const s = block();
  prepare(s, SCM_MAX_BYTES, CTRL_LEN);
  const n = libcFd().recvmsg(fd, s.ptr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) {
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return null;
    if (errno === ERRNO.ECONNRESET) return 'eof';
    throw new KvmSyscallError('recvmsg', errno);
  }
  const flags = s.dv.getInt32(MSG_OFF + 48, true);
  const fds = readRights(s, Number(s.dv.getBigUint64(MSG_OFF + 40, true)));
  if (n === 0) {
    for (const f of fds) libcFd().close(f);
    return 'eof';
  }
  const truncated = (flags & (MSG_TRUNC | MSG_CTRUNC)) !== 0;
  return { data: Buffer.from(s.bytes.subarray(DATA_OFF, DATA_OFF + n)), fds, truncated };
}

function readRights(s: Scratch, controlLen: number): number[] {
  const fds: number[] = [];
  let off = 0;
  while (off + CMSG_HDR <= controlLen) {
    const len = Number(s.dv.getBigUint64(CTRL_OFF + off, true));
    if (len < CMSG_HDR || off + len > controlLen) break;
    const level = s.dv.getInt32(CTRL_OFF + off + 8, true);
    const type = s.dv.getInt32(CTRL_OFF + off + 12, true);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let p = CMSG_HDR; p + 4 <= len; p += 4) fds.push(s.dv.getInt32(CTRL_OFF + off + p, true));
    }
    off += (len + 7) & ~7; // CMSG_ALIGN
  }
  return fds;
}

/**
 * Sends `data` as one message with `fds` attached (at most SCM_MAX_FDS). Returns false when the
 * socket's buffer is full (EAGAIN): SEQPACKET never sends part of a message.
 */
export function sendWithFds(fd: number, data: Uint8Array, fds: readonly number[] = []): boolean {
  if (data.length === 0 || data.length > SCM_MAX_BYTES || fds.length > SCM_MAX_FDS) {
    throw new KvmSyscallError(
      'sendmsg',
      ERRNO.EMSGSIZE as number,
      `a message is 1..${SCM_MAX_BYTES} bytes with at most ${SCM_MAX_FDS} fds`,
    );
  }
  const s = block();
  const controlLen = fds.length === 0 ? 0 : (CMSG_HDR + 4 * fds.length + 7) & ~7;
  prepare(s, data.length, controlLen);
  if (fds.length > 0) {
    s.dv.setBigUint64(CTRL_OFF, BigInt(CMSG_HDR + 4 * fds.length), true);
    s.dv.setInt32(CTRL_OFF + 8, SOL_SOCKET, true);
    s.dv.setInt32(CTRL_OFF + 12, SCM_RIGHTS, true);
    for (const [i, f] of fds.entries()) s.dv.setInt32(CTRL_OFF + CMSG_HDR + 4 * i, f, true);
  }
  s.bytes.set(data, DATA_OFF);
  const n = libcFd().sendmsg(fd, s.ptr, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n >= 0) return true;
  const errno = lastErrno();
  if (errno === ERRNO.EAGAIN) return false;
  throw new KvmSyscallError('sendmsg', errno);
}
