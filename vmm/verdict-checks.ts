/**
 * The check the reference client makes on an INJECT verdict before it hands the image to the VMM
 * (docs/protocol.md §5.1, INJECT): the 64 bytes go to `KVM_SET_VCPU_EVENTS` as received, so an
 * image the declared host would refuse, or would read as something else, is caught here instead.
 * The kernel may commit a valid abort from an image before it refuses an invalid SError part of it
 * (reference §3), so a failed ioctl is no safe way to find out. An image that fails is a protocol
 * error (§5.3): the exit gets the fallback and the client reconnects.
 */
import {
  decodeVcpuEvents,
  type InjectionAbi,
  isKvmError,
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_MMIO,
  layoutVcpuEvents,
  validateVcpuEvents,
} from '../kvm/index.js';
import { ACTION, CAP, type EventMsg, type VerdictMsg } from '../protocol/index.js';

/** The KVM exit each event reports; a SIGBUS is no KVM exit, so nothing may be injected after it. */
const EXIT_OF: Record<EventMsg['type'], number> = {
  sea: KVM_EXIT_ARM_SEA,
  nisv: KVM_EXIT_ARM_NISV,
  mmio: KVM_EXIT_MMIO,
  sigbus: 0,
};

/**
 * Why `v`, the verdict for `event`, must not be applied by a plugin whose HELLO declared `caps`;
 * null when it may. Only INJECT carries an image for the kernel; other actions pass.
 */
export function verdictRefusal(v: Omit<VerdictMsg, 'type'>, event: EventMsg, caps: number): string | null {
  if (v.action !== ACTION.INJECT) return null;
  if ((caps & CAP.INJECT_EXT_DABT) === 0) return 'INJECT to a plugin that did not declare INJECT_EXT_DABT';
  if (event.type === 'sigbus') return 'INJECT after a SIGBUS: KVM defines no injection without an abort exit';
  const abi: InjectionAbi = caps & CAP.EXT_ABT_ESR ? 'ext-abt-esr' : 'merged';
  const image = Buffer.from(v.vcpuEvents);
  const f = decodeVcpuEvents(image, abi);
  // Pad and reserved bytes zero, each flag 0 or 1: the image is exactly what its fields lay out.
  const canonical = layoutVcpuEvents(f, abi);
  const at = canonical.findIndex((b, i) => b !== image[i]);
  if (at >= 0)
    return `vcpu_events byte ${at} is 0x${image[at]?.toString(16)}: pad or reserved in the ${abi} layout, or a flag not 0 or 1`;
  if (f.serrorPending || f.serrorHasEsr || f.serrorEsr !== 0n) return 'vcpu_events asks for an SError';
  // Both set is validateVcpuEvents' to refuse, below.
  if (!f.extDabtPending && !f.extIabtPending)
    return 'vcpu_events sets neither ext_dabt_pending nor ext_iabt_pending: INJECT would inject nothing';
  if (!f.extAbtHasEsr && f.extAbtEsr !== 0n) return 'vcpu_events sets ext_abt_esr without ext_abt_has_esr';
  try {
    validateVcpuEvents(f, { abi, ras: (caps & CAP.RAS) !== 0 }, EXIT_OF[event.type]);
  } catch (err) {
    if (isKvmError(err)) return `vcpu_events: ${err.message}`;
    throw err;
  }
  return null;
}
