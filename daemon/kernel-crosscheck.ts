/**
 * When a plugin has attached its vCPU fds, the daemon reads the exit record from the kernel's own
 * kvm_run page and compares it with the plugin's copy. On any difference the kernel's values win;
 * the differing fields are recorded and counted (DESIGN "Architecture facts" 2). A page whose last
 * exit is not an abort exit at all is a mismatch of `exit_reason`, and nothing may be injected.
 */
import type { KvmExit, NonAbortExit } from '../kvm/index.js';
import type { EventMsg } from '../protocol/index.js';

export interface CrossChecked {
  /** The event to decide on: the plugin's, corrected with the kernel's values. */
  msg: EventMsg;
  /** Fields where the plugin's copy differed from the kernel page (empty when they agree). */
  mismatched: string[];
  /**
   * The kernel's page shows no abort exit: an injection now would be a programming error (reference
   * §3), so the event is answered RESUME, whatever the policy would decide on the plugin's copy.
   */
  notAbort?: true;
}

const KIND_OF_EXIT: Readonly<Record<KvmExit['reason'], EventMsg['type']>> = {
  'arm-sea': 'sea',
  'arm-nisv': 'nisv',
  mmio: 'mmio',
};

export function crossCheck(msg: EventMsg, kernel: KvmExit | NonAbortExit): CrossChecked {
  if (msg.type === 'sigbus') return { msg, mismatched: [] };
  if (kernel.reason === 'not-abort') return { msg, mismatched: ['exit_reason'], notAbort: true };
  const header = {
    seq: msg.seq,
    vcpu: msg.vcpu,
    timeNs: msg.timeNs,
    replay: msg.replay,
    fallbackAction: msg.fallbackAction,
  };
  const mismatched: string[] = [];
  if (KIND_OF_EXIT[kernel.reason] !== msg.type) mismatched.push('exit_reason');
  switch (kernel.reason) {
    case 'arm-sea': {
      if (msg.type === 'sea') {
        if (msg.kvmFlags !== kernel.flags) mismatched.push('flags');
        if (msg.esr !== kernel.esr) mismatched.push('esr');
        if (msg.gva !== kernel.gva) mismatched.push('gva');
        if (msg.gpa !== kernel.gpa) mismatched.push('gpa');
      }
      return {
        msg: {
          type: 'sea',
          ...header,
          kvmFlags: kernel.flags,
          esr: kernel.esr,
          gva: kernel.gva,
          gpa: kernel.gpa,
        },
        mismatched,
      };
    }
    case 'arm-nisv': {
      if (msg.type === 'nisv') {
        if (msg.esrIss !== kernel.esrIss) mismatched.push('esr_iss');
        if (msg.faultIpa !== kernel.faultIpa) mismatched.push('fault_ipa');
      }
      return {
        msg: { type: 'nisv', ...header, esrIss: kernel.esrIss, faultIpa: kernel.faultIpa },
        mismatched,
      };
    }
    case 'mmio': {
      if (msg.type === 'mmio') {
        if (msg.physAddr !== kernel.physAddr) mismatched.push('phys_addr');
        if (msg.len !== kernel.len) mismatched.push('len');
        if (msg.isWrite !== kernel.isWrite) mismatched.push('is_write');
      }
      return {
        msg: {
          type: 'mmio',
          ...header,
          physAddr: kernel.physAddr,
          data: kernel.data,
          len: kernel.len,
          isWrite: kernel.isWrite,
        },
        mismatched,
      };
    }
  }
}
