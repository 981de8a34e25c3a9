/**
 * Frame body → message. The parser (frame-parser.ts) has already checked the type and the body
 * length; this checks field values and never reads past the body.
 */
import { BODY_SIZE, CAP_ALL, EVENT_FLAG, HEADER_SIZE, LIMITS, MSG, NO_GPA, NO_VCPU } from './constants.js';
import { ProtocolError } from './errors.js';
import type { EventHeader, Message } from './messages.js';

/** Body size rule per type: exact size, or a minimum for variable-length bodies. */
export const BODY_RULES: ReadonlyMap<number, { exact?: number; min?: number }> = new Map([
  [MSG.HELLO, { min: 24 }],
  [MSG.WELCOME, { exact: BODY_SIZE.WELCOME }],
  [MSG.REJECT, { min: 4 }],
  [MSG.EVENT_SEA, { exact: BODY_SIZE.EVENT_SEA }],
  [MSG.EVENT_NISV, { exact: BODY_SIZE.EVENT_NISV }],
  [MSG.EVENT_MMIO, { exact: BODY_SIZE.EVENT_MMIO }],
  [MSG.EVENT_SIGBUS, { exact: BODY_SIZE.EVENT_SIGBUS }],
  [MSG.VERDICT, { exact: BODY_SIZE.VERDICT }],
  [MSG.APPLIED, { exact: BODY_SIZE.APPLIED }],
  [MSG.HEARTBEAT, { exact: BODY_SIZE.HEARTBEAT }],
  [MSG.ERROR, { min: 4 }],
  [MSG.GOODBYE, { exact: BODY_SIZE.GOODBYE }],
]);

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(b: Buffer, start: number, len: number, what: string): string {
  if (start + len > b.length) throw new ProtocolError('BAD_FRAME', `${what} runs past the end of the frame`);
  try {
    return utf8.decode(b.subarray(start, start + len));
  } catch {
    throw new ProtocolError('BAD_FIELD', `${what} is not valid UTF-8`);
  }
}

/** Reserved bytes must be zero (docs/protocol.md "Versioning"): a later version may give them meaning. */
function reserved(b: Buffer, from: number, to: number, what: string): void {
  for (let i = from; i < to; i++) {
    if (b[i] !== 0)
      throw new ProtocolError('BAD_FIELD', `${what}: reserved byte at body offset ${i} is not zero`);
  }
}

function header(b: Buffer): EventHeader {
  const vcpu = b.readUInt32LE(4);
  const flags = b.readUInt16LE(16);
  if (flags & ~EVENT_FLAG.REPLAY)
    throw new ProtocolError('BAD_FIELD', `unknown event flags 0x${flags.toString(16)}`);
  if (!(flags & EVENT_FLAG.REPLAY) && b[18] !== 0) {
    throw new ProtocolError('BAD_FIELD', 'fallback_action is set on an event that is not a REPLAY');
  }
  reserved(b, 19, 24, 'event');
  return {
    seq: b.readUInt32LE(0),
    vcpu: vcpu === NO_VCPU ? null : vcpu,
    timeNs: b.readBigUInt64LE(8),
    replay: (flags & EVENT_FLAG.REPLAY) !== 0,
    fallbackAction: b.readUInt8(18),
  };
}

function textMessage(b: Buffer, what: string): { code: number; message: string } {
  const len = b.readUInt16LE(2);
  if (len > LIMITS.messageTextMax)
    throw new ProtocolError('BAD_FIELD', `${what} text of ${len} bytes exceeds ${LIMITS.messageTextMax}`);
  if (4 + len !== b.length)
    throw new ProtocolError('BAD_FRAME', `${what} text length ${len} disagrees with the frame`);
  return { code: b.readUInt16LE(0), message: text(b, 4, len, `${what} text`) };
}

function hello(b: Buffer): Message {
  const vmIdLen = b.readUInt16LE(20);
  const labelCount = b.readUInt16LE(22);
  if (vmIdLen === 0 || vmIdLen > LIMITS.vmIdMax)
    throw new ProtocolError('BAD_FIELD', `vm id length ${vmIdLen}`);
  if (labelCount > LIMITS.labelsMax)
    throw new ProtocolError('BAD_FIELD', `${labelCount} labels, at most ${LIMITS.labelsMax}`);
  const caps = b.readUInt32LE(4);
  if (caps & ~CAP_ALL)
    throw new ProtocolError('BAD_FIELD', `unknown capability bits 0x${(caps & ~CAP_ALL).toString(16)}`);
  reserved(b, 2, 4, 'HELLO');
  const vcpuCount = b.readUInt32LE(12);
  if (vcpuCount === 0 || vcpuCount > LIMITS.vcpusMax)
    throw new ProtocolError('BAD_FIELD', `vcpu count ${vcpuCount}`);
  let o = 24;
  const vmId = text(b, o, vmIdLen, 'vm id');
  o += vmIdLen;
  const labels: Record<string, string> = Object.create(null);
  for (let i = 0; i < labelCount; i++) {
    if (o + 4 > b.length) throw new ProtocolError('BAD_FRAME', 'label header runs past the end of HELLO');
    const kl = b.readUInt16LE(o);
    const vl = b.readUInt16LE(o + 2);
    if (kl === 0 || kl > LIMITS.labelKeyMax || vl > LIMITS.labelValueMax) {
      throw new ProtocolError('BAD_FIELD', `label ${i}: key ${kl} / value ${vl} bytes out of range`);
    }
    o += 4;
    const key = text(b, o, kl, `label ${i} key`);
    o += kl;
    const value = text(b, o, vl, `label '${key}' value`);
    o += vl;
    if (key in labels) throw new ProtocolError('BAD_FIELD', `label '${key}' given twice`);
    labels[key] = value;
  }
  if (o !== b.length) throw new ProtocolError('BAD_FRAME', `HELLO has ${b.length - o} trailing bytes`);
  return {
    type: 'hello',
    version: b.readUInt16LE(0),
    caps: b.readUInt32LE(4),
    vmmPid: b.readUInt32LE(8),
    vcpuCount,
    extAbtEsrCap: b.readUInt32LE(16),
    vmId,
    labels: { ...labels },
  };
}

/** Decodes a body whose type and length the parser has already accepted. */
export function decodeBody(type: number, b: Buffer): Message {
  switch (type) {
    case MSG.EVENT_SEA:
      return {
        type: 'sea',
        ...header(b),
        kvmFlags: b.readBigUInt64LE(24),
        esr: b.readBigUInt64LE(32),
        gva: b.readBigUInt64LE(40),
        gpa: b.readBigUInt64LE(48),
      };
    case MSG.EVENT_NISV:
      return { type: 'nisv', ...header(b), esrIss: b.readBigUInt64LE(24), faultIpa: b.readBigUInt64LE(32) };
    case MSG.EVENT_MMIO:
      reserved(b, 45, 48, 'EVENT_MMIO');
      return {
        type: 'mmio',
        ...header(b),
        physAddr: b.readBigUInt64LE(24),
        data: new Uint8Array(b.subarray(32, 40)),
        len: b.readUInt32LE(40),
        isWrite: b.readUInt8(44) !== 0,
      };
    case MSG.EVENT_SIGBUS: {
      reserved(b, 28, 32, 'EVENT_SIGBUS');
      const gpa = b.readBigUInt64LE(32);
      return {
        type: 'sigbus',
        ...header(b),
        siCode: b.readUInt16LE(24),
        addrLsb: b.readUInt16LE(26),
        gpa: gpa === NO_GPA ? null : gpa,
      };
    }
    case MSG.VERDICT:
      reserved(b, 6, 8, 'VERDICT');
      reserved(b, 12, 16, 'VERDICT');
      return {
        type: 'verdict',
        seq: b.readUInt32LE(0),
        action: b.readUInt8(4),
        flags: b.readUInt8(5),
        graceMs: b.readUInt32LE(8),
        esr: b.readBigUInt64LE(16),
        vcpuEvents: new Uint8Array(b.subarray(24, 88)),
      };
    case MSG.APPLIED:
      return { type: 'applied', seq: b.readUInt32LE(0), result: b.readInt32LE(4) };
    case MSG.HEARTBEAT:
      return { type: 'heartbeat', nonce: b.readBigUInt64LE(0) };
    case MSG.GOODBYE:
      reserved(b, 2, 4, 'GOODBYE');
      return { type: 'goodbye', reason: b.readUInt16LE(0) };
    case MSG.HELLO:
      return hello(b);
    case MSG.WELCOME:
      reserved(b, 2, 4, 'WELCOME');
      reserved(b, 20, 24, 'WELCOME');
      return {
        type: 'welcome',
        version: b.readUInt16LE(0),
        maxInFlight: b.readUInt32LE(4),
        sessionId: b.readBigUInt64LE(8),
        heartbeatMs: b.readUInt32LE(16),
      };
    case MSG.REJECT:
      return { type: 'reject', ...textMessage(b, 'REJECT') };
    case MSG.ERROR:
      return { type: 'error', ...textMessage(b, 'ERROR') };
    default:
      throw new ProtocolError('UNKNOWN_TYPE', `unknown message type 0x${type.toString(16)}`);
  }
}

export { HEADER_SIZE };
