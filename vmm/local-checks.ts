/**
 * The checks the reference client makes before it sends or keeps an event (docs/protocol.md §9,
 * "Check before sending"): those a daemon of every version refuses with BAD_FIELD, and that depend
 * only on the event and the HELLO's `vcpu_count`. Such an event would end every session it is
 * sent on, live or replayed; it gets the fallback and is counted instead.
 *
 * The checks of 1.1 alone (§4.4: the declared capabilities, a SEA's EC, MMIO `len`, AR/AO and the
 * vCPU) are not made here: whether a daemon refuses them depends on the minor version of the
 * session the event is sent on, which an event kept while disconnected does not know yet. A
 * refused replay still ends the loop: each such session drops one kept event (§9, point 6).
 */
import { BUS_MCEERR_AO, BUS_MCEERR_AR, type EventMsg, NO_VCPU } from '../protocol/index.js';

/** Why every daemon would refuse `msg` from a plugin whose HELLO said `vcpuCount`; null if none would. */
export function localRefusal(msg: EventMsg, vcpuCount: number): string | null {
  const vcpu = msg.vcpu === NO_VCPU ? null : msg.vcpu;
  if (vcpu === null) {
    if (msg.type !== 'sigbus') return `${msg.type} event without a vCPU`;
  } else if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= vcpuCount) {
    return `vCPU ${vcpu} out of range (HELLO declares ${vcpuCount})`;
  }
  if (msg.type === 'sigbus' && msg.siCode !== BUS_MCEERR_AR && msg.siCode !== BUS_MCEERR_AO)
    return `sigbus si_code ${msg.siCode} is not BUS_MCEERR_AR (4) or BUS_MCEERR_AO (5)`;
  return null;
}
