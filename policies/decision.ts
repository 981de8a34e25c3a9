/**
 * The contract between the daemon and the policy engine: what an event looks like to a policy,
 * what the host can do, and what a policy decides. The daemon builds `PolicyEvent`s from protocol
 * messages (via kvm/ decoding) and turns `Decision`s into verdict bytes; nothing here does I/O.
 */
import {
  type AbortKind,
  type Esr,
  type FscClass,
  type InjectionAbi,
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_MMIO,
  type Severity,
} from '../kvm/index.js';

/** Event sources a VMM reports (docs/protocol.md). */
export type EventKind = 'sea' | 'nisv' | 'mmio' | 'sigbus';
export const EVENT_KINDS: readonly EventKind[] = ['sea', 'nisv', 'mmio', 'sigbus'];

/**
 * The KVM exit each event kind reports, the one after which KVM accepts an injected abort; null
 * for a SIGBUS, which is no KVM exit (KVM_SET_VCPU_EVENTS abort injection is not defined after it).
 */
export const KVM_EXIT_OF_KIND: Readonly<Record<EventKind, number | null>> = {
  sea: KVM_EXIT_ARM_SEA,
  nisv: KVM_EXIT_ARM_NISV,
  mmio: KVM_EXIT_MMIO,
  sigbus: null,
};

/** ISS bit 10, FnV: FAR_EL1 holds no valid address. */
const ISS_FNV = 1n << 10n;

/**
 * Whether the exit gave the plugin a guest VA for FAR_EL1: only a SEA exit whose ESR has FnV
 * clear. The daemon's verdict (the FnV of an emulated abort) and `explain` both ask it here.
 */
export function exitHasVa(kind: EventKind, exitEsr: bigint | null): boolean {
  return kind === 'sea' && exitEsr !== null && (exitEsr & ISS_FNV) === 0n;
}

/** Severity as a policy sees it: SET when meaningful, else `unknown`. */
export type PolicySeverity = Severity | 'unknown';

export interface VmIdentity {
  id: string;
  labels: Readonly<Record<string, string>>;
}

/** One memory-error event, decoded and typed. */
export interface PolicyEvent {
  kind: EventKind;
  vm: VmIdentity;
  /** vCPU index; null for a SIGBUS not tied to a vCPU (BUS_MCEERR_AO). */
  vcpu: number | null;
  /** Milliseconds since the epoch (wall clock; synthetic in tests). */
  timeMs: number;
  /** Decoded ESR for sea (full ESR) and nisv (ISS only, EC unknown); null for mmio and sigbus. */
  esr: Esr | null;
  /** data/instruction for aborts (sea, nisv, mmio are data aborts); null for sigbus. */
  abort: AbortKind | null;
  /** FSC class kind when an ESR is known, else null. */
  fsc: FscClass['kind'] | null;
  severity: PolicySeverity;
  /** Guest physical page address (low 12 bits clear) when known. */
  gpa: bigint | null;
  /** Informational, from event JSON: the faulting guest virtual address (what FAR_EL1 will read). */
  gva?: bigint | null;
  /** For sigbus: action required (a load hit poison) or action optional (found by scrubbing). */
  sigbusCode: 'BUS_MCEERR_AR' | 'BUS_MCEERR_AO' | null;
}

/** What the VM's host can inject, as its plugin declared in HELLO. */
export interface HostCapabilities {
  /** The kvm_vcpu_events ABI the host kernel accepts. */
  abi: InjectionAbi;
  /** FEAT_RAS exposed to the guest (needed for a chosen ISS). */
  ras: boolean;
  /** The VMM can emulate any abort itself by register writes (KVM_SET_ONE_REG), as QEMU does. */
  emulateAbort: boolean;
}

/**
 * How an abort reaches the guest. `kvm`: the plugin applies the kvm_vcpu_events bytes in the
 * verdict. `emulate`: the plugin writes ESR_EL1/FAR_EL1/… itself with the ESR in the verdict.
 */
export interface Injection {
  kind: AbortKind;
  /** ISS [24:0] to start from; undefined lets KVM build the ESR (the only merged-ABI option). */
  iss?: number;
  via: 'kvm' | 'emulate';
}

/**
 * Why a host could not take what a rule asked. Short codes, the same in metrics labels, journal
 * fields and the store (docs/metrics.md lists them).
 */
export const DOWNGRADE_REASONS = [
  /** A merged-ABI kernel has no ext_iabt_pending. */
  'merged_abi_no_iabt',
  /** A merged-ABI kernel builds the ESR itself: no chosen ISS. */
  'merged_abi_no_esr',
  /** A chosen ISS needs FEAT_RAS in the guest. */
  'no_ras',
  /** KVM ORs FSC 0x10 into a chosen ESR, which would change the FSC asked for. */
  'fsc_altered',
  /** After a SIGBUS there is no KVM exit to inject after. */
  'sigbus_not_exit',
  /** A SIGBUS with no vCPU (BUS_MCEERR_AO) has nothing to inject into. */
  'sigbus_no_vcpu',
  /** The host has no KVM_CAP_ARM_INJECT_EXT_DABT. */
  'no_inject_cap',
  /** KVM refused the image for another reason (kvm/'s message is in `detail`). */
  'kvm_rejected',
] as const;
export type DowngradeReason = (typeof DOWNGRADE_REASONS)[number];

/**
 * Recorded when a rule asked for more than the host can do and its `onUnsupported` chose instead
 * (or the daemon had to change the injection's path). `from`/`to` are short codes: an injection
 * as `dabt`, `dabt_esr`, `iabt`, `iabt_esr` (KVM) or `emul_dabt`, `emul_dabt_esr`, `emul_iabt`,
 * `emul_iabt_esr` (the VMM emulates), or an action: `kill`, `migrate`, `none`, `resume`.
 */
export interface Downgrade {
  from: string;
  to: string;
  reason: DowngradeReason;
  /** The same in words, for people (kvm/'s own message). */
  detail: string;
}

interface DecisionBase {
  /** Identifier of the policy version that decided (content hash). */
  policyVersion: string;
  /** Name of the matched rule, or `default`. */
  rule: string;
  downgrade?: Downgrade;
  /**
   * Dry-run: the policy's own decision, recorded; the answer sent is the default. `downgrade`
   * is the downgrade that decision would have needed on this host (none was applied).
   */
  dryRun?: { wouldHave: ActionDecision; downgrade?: Downgrade };
}

export type ActionDecision =
  | { action: 'inject'; inject: Injection }
  | {
      action: 'kill';
      /** How long the VMM has to terminate the VM before the daemon enforces it. */
      graceMs: number;
    }
  | {
      action: 'migrate';
      /** Name of the configured migration hook. */
      hook: string;
      /** `vm`: migrate this VM; `host`: evacuate every VM on this host (each its own request). */
      scope: 'vm' | 'host';
      /** What the stalled vCPU gets now, while the migration is requested. */
      meanwhile: Injection | null;
      /** Next step when the migration is refused, fails or times out. */
      onFailure: { action: 'kill'; graceMs: number } | { action: 'none' };
    }
  /** Count and record only: nothing to apply (e.g. a SIGBUS AO report, no vCPU stalled). */
  | { action: 'none' };

export type Decision = DecisionBase & ActionDecision;
export type Action = ActionDecision['action'];

/** What the daemon asks of a policy. One provider instance decides each event entirely. */
export interface DecisionProvider {
  readonly version: string;
  /** How far back stored events are replayed into its rate and repeat state at start. */
  readonly stateWindowMs?: number;
  decide(event: PolicyEvent, host: HostCapabilities): Decision;
}
