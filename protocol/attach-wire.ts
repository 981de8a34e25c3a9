/**
 * The attach channel's messages (docs/actions.md "vCPU attachment"): fixed-size little-endian
 * records on a SOCK_SEQPACKET socket, one record per message, the vCPU fd beside it as SCM_RIGHTS.
 * A C plugin writes them with a packed struct; nothing here needs a parser state machine because
 * the kernel keeps message boundaries.
 */
import { ProtocolError } from './errors.js';

/** "SWAT" read as a little-endian u32. */
export const ATTACH_MAGIC = 0x54415753;
export const ATTACH_VERSION = 1;
export const ATTACH_REQUEST_SIZE = 24;
export const ATTACH_REPLY_SIZE = 16;

export const ATTACH_OP = { ATTACH: 1, DETACH: 2 } as const;
export type AttachOp = (typeof ATTACH_OP)[keyof typeof ATTACH_OP];
/** Replies echo the request's op with this bit set. */
export const ATTACH_REPLY_BIT = 0x80;

/** Reply status (u32). Statuses marked "closes" end the connection after the reply. */
export const ATTACH_STATUS = {
  OK: 0,
  /** Wrong size, magic, version, op or a non-zero reserved field (closes). */
  MALFORMED: 1,
  /** ATTACH without exactly one fd, or DETACH with any (closes). */
  FD_COUNT: 2,
  /** No live plugin session has this id. */
  UNKNOWN_SESSION: 3,
  /** SO_PEERCRED pid of this connection is not the pid of the session's plugin connection (closes). */
  PEER_MISMATCH: 4,
  /** vCPU index ≥ the session's vcpu_count. */
  VCPU_RANGE: 5,
  /** The fd is not a KVM vCPU fd (nor an accepted sealed stand-in), or mmap failed. */
  BAD_FD: 6,
  /** DETACH of a vCPU this connection has not attached. */
  NOT_ATTACHED: 7,
  /** The connection already attached vCPUs of another session (closes). */
  SESSION_MISMATCH: 8,
  /** The daemon holds as many attached vCPUs as it takes (`attach.maxVcpus`), all sessions together. */
  LIMIT: 9,
} as const;
export type AttachStatus = (typeof ATTACH_STATUS)[keyof typeof ATTACH_STATUS];
export const ATTACH_STATUS_NAME: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ATTACH_STATUS).map(([k, v]) => [v, k.toLowerCase()]),
);
/** Statuses after which the daemon closes the connection. */
export const CLOSING_STATUSES: ReadonlySet<number> = new Set([
  ATTACH_STATUS.MALFORMED,
  ATTACH_STATUS.FD_COUNT,
  ATTACH_STATUS.PEER_MISMATCH,
  ATTACH_STATUS.SESSION_MISMATCH,
]);

export interface AttachRequest {
  op: AttachOp;
  sessionId: bigint;
  vcpu: number;
}

export interface AttachReply {
  op: AttachOp;
  vcpu: number;
  status: number;
}

/** Decodes a request; throws ProtocolError SEAWALL_PROTO_BAD_FRAME on anything but a valid record. */
export function decodeAttachRequest(buf: Uint8Array): AttachRequest {
  if (buf.length !== ATTACH_REQUEST_SIZE)
    throw new ProtocolError('BAD_FRAME', `request of ${buf.length} bytes, expected ${ATTACH_REQUEST_SIZE}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (dv.getUint32(0, true) !== ATTACH_MAGIC) throw new ProtocolError('BAD_FRAME', 'bad magic');
  const version = dv.getUint16(4, true);
  if (version !== ATTACH_VERSION)
    throw new ProtocolError('BAD_FRAME', `attach version ${version}, expected ${ATTACH_VERSION}`);
  const op = dv.getUint16(6, true);
  if (op !== ATTACH_OP.ATTACH && op !== ATTACH_OP.DETACH)
    throw new ProtocolError('BAD_FRAME', `unknown op ${op}`);
  if (dv.getUint32(20, true) !== 0) throw new ProtocolError('BAD_FRAME', 'reserved field is not 0');
  return { op, sessionId: dv.getBigUint64(8, true), vcpu: dv.getUint32(16, true) };
}

export function encodeAttachRequest(r: AttachRequest): Buffer {
  const buf = Buffer.alloc(ATTACH_REQUEST_SIZE);
  buf.writeUInt32LE(ATTACH_MAGIC, 0);
  buf.writeUInt16LE(ATTACH_VERSION, 4);
  buf.writeUInt16LE(r.op, 6);
  buf.writeBigUInt64LE(r.sessionId, 8);
  buf.writeUInt32LE(r.vcpu, 16);
  return buf;
}

export function encodeAttachReply(r: AttachReply): Buffer {
  const buf = Buffer.alloc(ATTACH_REPLY_SIZE);
  buf.writeUInt32LE(ATTACH_MAGIC, 0);
  buf.writeUInt16LE(ATTACH_VERSION, 4);
  buf.writeUInt16LE(r.op | ATTACH_REPLY_BIT, 6);
  buf.writeUInt32LE(r.vcpu, 8);
  buf.writeUInt32LE(r.status, 12);
  return buf;
}

export function decodeAttachReply(buf: Uint8Array): AttachReply {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (
    b.length !== ATTACH_REPLY_SIZE ||
    b.readUInt32LE(0) !== ATTACH_MAGIC ||
    b.readUInt16LE(4) !== ATTACH_VERSION
  )
    throw new ProtocolError('BAD_FRAME', 'not an attach reply');
  const op = b.readUInt16LE(6) & ~ATTACH_REPLY_BIT;
  if (op !== ATTACH_OP.ATTACH && op !== ATTACH_OP.DETACH)
    throw new ProtocolError('BAD_FRAME', `unknown reply op ${op}`);
  return { op, vcpu: b.readUInt32LE(8), status: b.readUInt32LE(12) };
}
