/**
 * Frame body → message. The parser (frame-parser.ts) has already checked the type and the body
 * length; this checks field values and never reads past the body. `minor` is the session's minor
 * version: a 1.1 session gets the stricter field checks of protocol 1.1 (event-checks.ts), a 1.0
 * session exactly the checks 1.0 specified.
 */
import {
  ACTION,
  APPLIED_SOURCE,
  BODY_SIZE,
  CAP_ALL,
  EVENT_FLAG,
  HEADER_SIZE,
  LIMITS,
  MSG,
  NO_GPA,
  NO_VCPU,
  PROTOCOL_MINOR,
  PROTOCOL_VERSION,
  WIRE_ERROR,
} from './constants.js';
import { ProtocolError } from './errors.js';
import { checkEvent11, checkHello11 } from './event-checks.js';
import type { EventHeader, EventMsg, Message } from './messages.js';

export type BodyRule = { exact?: number; min?: number; max?: number };

/**
 * Body size rule per type: exact size, or a minimum for variable-length bodies. HELLO's minimum is
 * its 4 version bytes, the part every version shares, so that any HELLO reaches the version check.
 */
export const BODY_RULES: ReadonlyMap<number, BodyRule> = new Map([
  [MSG.HELLO, { min: 4 }],
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

/**
 * The rules of a 1.1 session: APPLIED is the 1.0 form ("the verdict, as sent") or the 16-byte form
 * that says what was applied instead (decode.ts refuses the sizes in between).
 */
export const BODY_RULES_V11: ReadonlyMap<number, BodyRule> = new Map([
  ...BODY_RULES,
  [MSG.APPLIED, { min: BODY_SIZE.APPLIED, max: BODY_SIZE.APPLIED_V11 }],
]);

/** The size rules for a session of minor version `minor`. */
export function bodyRules(minor: number): ReadonlyMap<number, BodyRule> {
  return minor >= 1 ? BODY_RULES_V11 : BODY_RULES;
}

const ACTION_CODES: ReadonlySet<number> = new Set(Object.values(ACTION));

// ignoreBOM: a leading EF BB BF is a character of the string (U+FEFF), not a marker to drop; dropping
// it would make a vm_id of only a BOM decode to "" and "\uFEFFvm-7" the same id as "vm-7".
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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
  // 1.0 defined fallback_action as "the ACTION code the plugin applied": nothing else can be one.
  if (!ACTION_CODES.has(b[18] as number))
    throw new ProtocolError('BAD_FIELD', `fallback_action ${b[18]} is not an ACTION code`);
  reserved(b, 19, 24, 'event');
  return {
    seq: b.readUInt32LE(0),
    vcpu: vcpu === NO_VCPU ? null : vcpu,
    timeNs: b.readBigUInt64LE(8),
    replay: (flags & EVENT_FLAG.REPLAY) !== 0,
    fallbackAction: b.readUInt8(18),
  };
}

function textMessage(b: Buffer, what: string, trailer = 0): { code: number; message: string } {
  const len = b.readUInt16LE(2);
  if (len > LIMITS.messageTextMax)
    throw new ProtocolError('BAD_FIELD', `${what} text of ${len} bytes exceeds ${LIMITS.messageTextMax}`);
  if (4 + len + trailer !== b.length)
    throw new ProtocolError('BAD_FRAME', `${what} text length ${len} disagrees with the frame`);
  return { code: b.readUInt16LE(0), message: text(b, 4, len, `${what} text`) };
}

/** REJECT; REJECT VERSION from a 1.1 daemon ends with the highest version it speaks (u16 major, u16 minor). */
function reject(b: Buffer): Message {
  const code = b.readUInt16LE(0);
  const textEnd = 4 + b.readUInt16LE(2);
  if (code === WIRE_ERROR.VERSION && b.length === textEnd + 4) {
    const supported = { major: b.readUInt16LE(textEnd), minor: b.readUInt16LE(textEnd + 2) };
    return { type: 'reject', ...textMessage(b, 'REJECT', 4), supported };
  }
  return { type: 'reject', ...textMessage(b, 'REJECT') };
}

/**
 * The version is read before anything else in HELLO, so that a HELLO of a version this side does
 * not speak — whatever its layout — is answered REJECT VERSION, never a layout error.
 */
function helloVersion(b: Buffer): { version: number; minor: number } {
  const version = b.readUInt16LE(0);
  const minor = b.readUInt16LE(2);
  if (version !== PROTOCOL_VERSION || minor > PROTOCOL_MINOR) {
    throw new ProtocolError(
      'VERSION',
      `protocol version ${version}.${minor} is not spoken here (the highest is ${PROTOCOL_VERSION}.${PROTOCOL_MINOR})`,
    );
  }
  if (b.length < 24)
    throw new ProtocolError('BAD_FRAME', `HELLO body must be at least 24 bytes, got ${b.length}`);
  return { version, minor };
}

function hello(b: Buffer): Message {
  const { version, minor } = helloVersion(b);
  const vmIdLen = b.readUInt16LE(20);
  const labelCount = b.readUInt16LE(22);
  if (vmIdLen === 0 || vmIdLen > LIMITS.vmIdMax)
    throw new ProtocolError('BAD_FIELD', `vm id length ${vmIdLen}`);
  if (labelCount > LIMITS.labelsMax)
    throw new ProtocolError('BAD_FIELD', `${labelCount} labels, at most ${LIMITS.labelsMax}`);
  const caps = b.readUInt32LE(4);
  if (caps & ~CAP_ALL)
    throw new ProtocolError('BAD_FIELD', `unknown capability bits 0x${(caps & ~CAP_ALL).toString(16)}`);
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
  const msg = {
    type: 'hello',
    version,
    minor,
    caps: b.readUInt32LE(4),
    vmmPid: b.readUInt32LE(8),
    vcpuCount,
    extAbtEsrCap: b.readUInt32LE(16),
    vmId,
    labels: { ...labels },
  } as const;
  if (minor >= 1) checkHello11(msg);
  return msg;
}

function applied(b: Buffer): Message {
  const seq = b.readUInt32LE(0);
  const result = b.readInt32LE(4);
  if (b.length === BODY_SIZE.APPLIED) return { type: 'applied', seq, result };
  if (b.length !== BODY_SIZE.APPLIED_V11)
    throw new ProtocolError('BAD_FRAME', `APPLIED body must be 8 or 16 bytes, got ${b.length}`);
  const action = b.readUInt8(8);
  const source = b.readUInt8(9);
  if (!ACTION_CODES.has(action))
    throw new ProtocolError('BAD_FIELD', `APPLIED action ${action} is not an ACTION code`);
  if (source !== APPLIED_SOURCE.VERDICT && source !== APPLIED_SOURCE.FALLBACK)
    throw new ProtocolError('BAD_FIELD', `APPLIED source ${source} is neither VERDICT (0) nor FALLBACK (1)`);
  reserved(b, 10, 16, 'APPLIED');
  return { type: 'applied', seq, result, applied: { action, source } };
}

function event(type: number, b: Buffer): EventMsg {
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
    case MSG.EVENT_MMIO: {
      reserved(b, 45, 48, 'EVENT_MMIO');
      const isWrite = b.readUInt8(44);
      // 1.0 already said "0 or 1": kvm_run.mmio.is_write is a boolean.
      if (isWrite > 1) throw new ProtocolError('BAD_FIELD', `MMIO is_write ${isWrite} is neither 0 nor 1`);
      return {
        type: 'mmio',
        ...header(b),
        physAddr: b.readBigUInt64LE(24),
        data: new Uint8Array(b.subarray(32, 40)),
        len: b.readUInt32LE(40),
        isWrite: isWrite === 1,
      };
    }
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
    default:
      throw new ProtocolError('UNKNOWN_TYPE', `0x${type.toString(16)} is not an event type`);
  }
}

/** Decodes a body whose type and length the parser has already accepted, for a session of `minor`. */
export function decodeBody(type: number, b: Buffer, minor = 0): Message {
  switch (type) {
    case MSG.EVENT_SEA:
    case MSG.EVENT_NISV:
    case MSG.EVENT_MMIO:
    case MSG.EVENT_SIGBUS: {
      const e = event(type, b);
      if (minor >= 1) checkEvent11(e);
      return e;
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
      return applied(b);
    case MSG.HEARTBEAT:
      return { type: 'heartbeat', nonce: b.readBigUInt64LE(0) };
    case MSG.GOODBYE:
      reserved(b, 2, 4, 'GOODBYE');
      return { type: 'goodbye', reason: b.readUInt16LE(0) };
    case MSG.HELLO:
      return hello(b);
    case MSG.WELCOME: {
      // +2 (minor) and +20 (max_body) were reserved in 1.0, and a 1.0 WELCOME still has them 0.
      const welcomeMinor = b.readUInt16LE(2);
      if (welcomeMinor === 0) reserved(b, 20, 24, 'WELCOME');
      return {
        type: 'welcome',
        version: b.readUInt16LE(0),
        minor: welcomeMinor,
        maxInFlight: b.readUInt32LE(4),
        sessionId: b.readBigUInt64LE(8),
        heartbeatMs: b.readUInt32LE(16),
        maxBody: b.readUInt32LE(20),
      };
    }
    case MSG.REJECT:
      return reject(b);
    case MSG.ERROR:
      return { type: 'error', ...textMessage(b, 'ERROR') };
    default:
      throw new ProtocolError('UNKNOWN_TYPE', `unknown message type 0x${type.toString(16)}`);
  }
}

export { HEADER_SIZE };
