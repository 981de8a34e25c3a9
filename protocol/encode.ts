/**
 * Message → frame bytes. Fixed-size bodies are written at fixed offsets (docs/protocol.md);
 * strings are u16-length-prefixed UTF-8. Encoders validate what they write, so a frame this side
 * produces is one the other side's decoder accepts.
 */
import { assertNever } from '../kvm/index.js';
import { BODY_SIZE, EVENT_FLAG, HEADER_SIZE, LIMITS, MSG, NO_GPA, NO_VCPU, WIRE_ERROR } from './constants.js';
import { ProtocolError } from './errors.js';
import type { EventHeader, Message, VerdictMsg } from './messages.js';

function frame(type: number, bodySize: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + bodySize);
  buf.writeUInt32LE(bodySize, 0);
  buf.writeUInt16LE(type, 4);
  buf.writeUInt16LE(0, 6);
  return buf;
}

function eventFrame(type: number, size: number, e: EventHeader): Buffer {
  const buf = frame(type, size);
  buf.fill(0, HEADER_SIZE);
  const o = HEADER_SIZE;
  buf.writeUInt32LE(e.seq >>> 0, o);
  buf.writeUInt32LE(e.vcpu === null ? NO_VCPU : e.vcpu, o + 4);
  buf.writeBigUInt64LE(e.timeNs, o + 8);
  buf.writeUInt16LE(e.replay ? EVENT_FLAG.REPLAY : 0, o + 16);
  buf.writeUInt8(e.fallbackAction, o + 18);
  return buf;
}

function utf8(text: string, max: number, what: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length > max) throw new ProtocolError('BAD_FIELD', `${what} is ${b.length} bytes, at most ${max}`);
  return b;
}

/** UTF-8 of `message`, cut at a character boundary to the protocol's text limit. */
function boundedText(message: string): Buffer {
  const full = Buffer.from(message, 'utf8');
  if (full.length <= LIMITS.messageTextMax) return full;
  let end = LIMITS.messageTextMax;
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((full[end] as number) & 0xc0) === 0x80) end--;
  return full.subarray(0, end);
}

function textFrame(type: number, code: number, message: string, trailer = 0): Buffer {
  const text = boundedText(message);
  const buf = frame(type, 4 + text.length + trailer);
  buf.writeUInt16LE(code, HEADER_SIZE);
  buf.writeUInt16LE(text.length, HEADER_SIZE + 2);
  text.copy(buf, HEADER_SIZE + 4);
  return buf;
}

/** A VERDICT frame; the hot path calls this directly. */
export function encodeVerdict(v: Omit<VerdictMsg, 'type'>): Buffer {
  const buf = frame(MSG.VERDICT, BODY_SIZE.VERDICT);
  const o = HEADER_SIZE;
  buf.writeUInt32LE(v.seq >>> 0, o);
  buf.writeUInt8(v.action, o + 4);
  buf.writeUInt8(v.flags, o + 5);
  buf.writeUInt16LE(0, o + 6);
  buf.writeUInt32LE(v.graceMs >>> 0, o + 8);
  buf.writeUInt32LE(0, o + 12);
  buf.writeBigUInt64LE(v.esr, o + 16);
  if (v.vcpuEvents.byteLength === 64) buf.set(v.vcpuEvents, o + 24);
  else if (v.vcpuEvents.byteLength === 0) buf.fill(0, o + 24);
  else throw new ProtocolError('BAD_FIELD', `vcpu_events must be 64 bytes, got ${v.vcpuEvents.byteLength}`);
  return buf;
}

export function encodeMessage(m: Message): Buffer {
  switch (m.type) {
    case 'hello': {
      const vmId = utf8(m.vmId, LIMITS.vmIdMax, 'vm id');
      if (vmId.length === 0) throw new ProtocolError('BAD_FIELD', 'vm id is empty');
      const entries = Object.entries(m.labels);
      if (entries.length > LIMITS.labelsMax)
        throw new ProtocolError('BAD_FIELD', `more than ${LIMITS.labelsMax} labels`);
      const labels = entries.map(([k, v]) => [
        utf8(k, LIMITS.labelKeyMax, `label key '${k}'`),
        utf8(v, LIMITS.labelValueMax, `label '${k}' value`),
      ]);
      const size =
        24 +
        vmId.length +
        labels.reduce((n, [k, v]) => n + 4 + (k as Buffer).length + (v as Buffer).length, 0);
      const buf = frame(MSG.HELLO, size);
      let o = HEADER_SIZE;
      buf.writeUInt16LE(m.version, o);
      buf.writeUInt16LE(m.minor ?? 0, o + 2);
      buf.writeUInt32LE(m.caps >>> 0, o + 4);
      buf.writeUInt32LE(m.vmmPid >>> 0, o + 8);
      buf.writeUInt32LE(m.vcpuCount >>> 0, o + 12);
      buf.writeUInt32LE(m.extAbtEsrCap >>> 0, o + 16);
      buf.writeUInt16LE(vmId.length, o + 20);
      buf.writeUInt16LE(labels.length, o + 22);
      o += 24;
      o += vmId.copy(buf, o);
      for (const [k, v] of labels as [Buffer, Buffer][]) {
        buf.writeUInt16LE(k.length, o);
        buf.writeUInt16LE(v.length, o + 2);
        o += 4;
        o += k.copy(buf, o);
        o += v.copy(buf, o);
      }
      return buf;
    }
    case 'welcome': {
      const buf = frame(MSG.WELCOME, BODY_SIZE.WELCOME);
      const o = HEADER_SIZE;
      buf.writeUInt16LE(m.version, o);
      buf.writeUInt16LE(m.minor ?? 0, o + 2);
      buf.writeUInt32LE(m.maxInFlight, o + 4);
      buf.writeBigUInt64LE(m.sessionId, o + 8);
      buf.writeUInt32LE(m.heartbeatMs, o + 16);
      // max_body exists from 1.1 on; a 1.0 WELCOME keeps the reserved zero a 1.0 plugin checks.
      buf.writeUInt32LE((m.minor ?? 0) >= 1 ? (m.maxBody ?? 0) : 0, o + 20);
      return buf;
    }
    case 'reject': {
      if (m.supported === undefined) return textFrame(MSG.REJECT, m.code, m.message);
      if (m.code !== WIRE_ERROR.VERSION)
        throw new ProtocolError('BAD_FIELD', 'only REJECT VERSION names a supported version');
      const buf = textFrame(MSG.REJECT, m.code, m.message, 4);
      buf.writeUInt16LE(m.supported.major, buf.length - 4);
      buf.writeUInt16LE(m.supported.minor, buf.length - 2);
      return buf;
    }
    case 'error':
      return textFrame(MSG.ERROR, m.code, m.message);
    case 'sea': {
      const buf = eventFrame(MSG.EVENT_SEA, BODY_SIZE.EVENT_SEA, m);
      const o = HEADER_SIZE + 24;
      buf.writeBigUInt64LE(m.kvmFlags, o);
      buf.writeBigUInt64LE(m.esr, o + 8);
      buf.writeBigUInt64LE(m.gva, o + 16);
      buf.writeBigUInt64LE(m.gpa, o + 24);
      return buf;
    }
    case 'nisv': {
      const buf = eventFrame(MSG.EVENT_NISV, BODY_SIZE.EVENT_NISV, m);
      buf.writeBigUInt64LE(m.esrIss, HEADER_SIZE + 24);
      buf.writeBigUInt64LE(m.faultIpa, HEADER_SIZE + 32);
      return buf;
    }
    case 'mmio': {
      const buf = eventFrame(MSG.EVENT_MMIO, BODY_SIZE.EVENT_MMIO, m);
      const o = HEADER_SIZE + 24;
      buf.writeBigUInt64LE(m.physAddr, o);
      buf.set(m.data.subarray(0, 8), o + 8);
      buf.writeUInt32LE(m.len, o + 16);
      buf.writeUInt8(m.isWrite ? 1 : 0, o + 20);
      return buf;
    }
    case 'sigbus': {
      const buf = eventFrame(MSG.EVENT_SIGBUS, BODY_SIZE.EVENT_SIGBUS, m);
      const o = HEADER_SIZE + 24;
      buf.writeUInt16LE(m.siCode, o);
      buf.writeUInt16LE(m.addrLsb, o + 2);
      buf.writeBigUInt64LE(m.gpa ?? NO_GPA, o + 8);
      return buf;
    }
    case 'verdict':
      return encodeVerdict(m);
    case 'applied': {
      const buf = frame(MSG.APPLIED, m.applied ? BODY_SIZE.APPLIED_V11 : BODY_SIZE.APPLIED);
      buf.writeUInt32LE(m.seq >>> 0, HEADER_SIZE);
      buf.writeInt32LE(m.result, HEADER_SIZE + 4);
      if (m.applied) {
        buf.fill(0, HEADER_SIZE + 8);
        buf.writeUInt8(m.applied.action, HEADER_SIZE + 8);
        buf.writeUInt8(m.applied.source, HEADER_SIZE + 9);
      }
      return buf;
    }
    case 'heartbeat': {
      const buf = frame(MSG.HEARTBEAT, BODY_SIZE.HEARTBEAT);
      buf.writeBigUInt64LE(m.nonce, HEADER_SIZE);
      return buf;
    }
    case 'goodbye': {
      const buf = frame(MSG.GOODBYE, BODY_SIZE.GOODBYE);
      buf.writeUInt16LE(m.reason, HEADER_SIZE);
      buf.writeUInt16LE(0, HEADER_SIZE + 2);
      return buf;
    }
    default:
      return assertNever(m, 'message');
  }
}
