/**
 * The checks the reference client makes before it sends or keeps an event (docs/protocol.md §9,
 * "Check before sending"): those a daemon refuses with BAD_FIELD, and that depend only on the event,
 * the HELLO's `vcpu_count` and `caps`, and the session's minor version. Such an event would end every
 * session it is sent on, live or replayed; it gets the fallback and is counted instead.
 *
 * The checks every version makes apply always. Those of 1.1 alone (§4.4: a SEA's EC, MMIO `len`, AR
 * and AO against the vCPU, the capability the event's kind needs declared; protocol/event-checks.ts)
 * apply in a 1.1 session: to a live exit, and to each kept event again when a 1.1 session is about to
 * replay it (an event kept while disconnected did not know its session's version yet). A refused
 * replay still ends any loop: each such session drops one kept event (§9, point 6).
 */
import {
  checkEvent,
  checkEvent11,
  checkEventCaps,
  type EventMsg,
  isProtocolError,
  NO_VCPU,
} from '../protocol/index.js';

/**
 * Why a daemon would refuse `msg` from a plugin whose HELLO said `vcpuCount` and `caps`, in a session
 * of minor version `minor` (0 when not known: only the checks every version makes); null if it would
 * not.
 */
export function localRefusal(msg: EventMsg, vcpuCount: number, caps: number, minor = 0): string | null {
  const m = msg.vcpu === NO_VCPU ? { ...msg, vcpu: null } : msg;
  // What the encoder could not write as a vCPU index is out of range as well.
  if (m.vcpu !== null && !(Number.isInteger(m.vcpu) && m.vcpu >= 0))
    return `vCPU ${m.vcpu} out of range (HELLO declared ${vcpuCount})`;
  try {
    checkEvent(m, vcpuCount);
    if (minor >= 1) {
      checkEvent11(m);
      checkEventCaps(m, caps);
    }
  } catch (err) {
    if (isProtocolError(err)) return err.message;
    throw err;
  }
  return null;
}
