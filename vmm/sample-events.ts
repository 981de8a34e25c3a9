/**
 * The sample SEA exit that tests and benchmarks report: a guest's read hit poison, and KVM exited
 * with KVM_EXIT_ARM_SEA. Its ESR, 0x92000410, is a data abort from a lower exception level
 * (EC 0x24, IL 1) with FnV set (FAR not valid) and DFSC 0x10 — a synchronous external abort not
 * on a table walk, severity UER — and the GPA is valid. It lives on the plugin side because
 * that is where exits come from, and so that test/ and bench/ share one definition of it.
 */
import { KVM_EXIT_ARM_SEA_FLAG_GPA_VALID } from '../kvm/index.js';
import { encodeMessage, type SeaEventMsg } from '../protocol/index.js';

/** ESR_EL2 of the sample exit (see above; `seawall esr decode 0x92000410`). */
export const SAMPLE_SEA_ESR = 0x92000410n;

/** The sample exit as a VMM reports it (`PluginClient.handleExit`). */
export type SeaExit = Omit<SeaEventMsg, 'seq' | 'timeNs' | 'replay' | 'fallbackAction'>;

/** The sample exit on vCPU 0 at GPA 0x1000, with any field replaced. */
export function seaExit(fields: Partial<SeaExit> = {}): SeaExit {
  return {
    type: 'sea',
    vcpu: 0,
    kvmFlags: KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
    esr: SAMPLE_SEA_ESR,
    gva: 0n,
    gpa: 0x1000n,
    ...fields,
  };
}

/**
 * The sample exit as a whole EVENT_SEA message, as the plugin sends it: `seq`, time 0 (the
 * daemon stamps live events itself), not a replay, with any field replaced.
 */
export function seaEvent(seq: number, fields: Partial<SeaEventMsg> = {}): SeaEventMsg {
  return { ...seaExit(), seq, timeNs: 0n, replay: false, fallbackAction: 0, ...fields };
}

/** The frame of {@link seaEvent}: the bytes a plugin writes for it. */
export function seaFrame(seq: number, fields: Partial<SeaEventMsg> = {}): Buffer {
  return encodeMessage(seaEvent(seq, fields));
}
