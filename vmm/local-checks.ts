/**
 * The checks the reference client makes before it sends or keeps an event (docs/protocol.md §9,
 * "Check before sending"): those a daemon refuses with BAD_FIELD, and that depend only on the event,
 * the HELLO's `vcpu_count` and the session's minor version. Such an event would end every session it
 * is sent on, live or replayed; it gets the fallback and is counted instead.
 *
 * The checks every version makes apply always. Those of 1.1 alone (§4.4: a SEA's EC, MMIO `len`, AR
 * and AO against the vCPU; protocol/event-checks.ts) apply in a 1.1 session: to a live exit, and to
 * each kept event again when a 1.1 session is about to replay it (an event kept while disconnected
 * did not know its session's version yet). The declared capabilities are left to the daemon. A
 * refused replay still ends any loop: each such session drops one kept event (§9, point 6).
 */
import {
  BUS_MCEERR_AO,
  BUS_MCEERR_AR,
  checkEvent11,
  type EventMsg,
  isProtocolError,
  NO_VCPU,
} from '../protocol/index.js';

/**
 * Why a daemon would refuse `msg` from a plugin whose HELLO said `vcpuCount`, in a session of minor
 * version `minor` (0 when not known: only the checks every version makes); null if it would not.
 */
export function localRefusal(msg: EventMsg, vcpuCount: number, minor = 0): string | null {
  const vcpu = msg.vcpu === NO_VCPU ? null : msg.vcpu;
  if (vcpu === null) {
    if (msg.type !== 'sigbus') return `${msg.type} event without a vCPU`;
  } else if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= vcpuCount) {
    return `vCPU ${vcpu} out of range (HELLO declares ${vcpuCount})`;
  }
  if (msg.type === 'sigbus' && msg.siCode !== BUS_MCEERR_AR && msg.siCode !== BUS_MCEERR_AO)
    return `sigbus si_code ${msg.siCode} is not BUS_MCEERR_AR (4) or BUS_MCEERR_AO (5)`;
  if (minor >= 1) {
    try {
      checkEvent11(msg);
    } catch (err) {
      if (isProtocolError(err)) return err.message;
      throw err;
    }
  }
  return null;
}
