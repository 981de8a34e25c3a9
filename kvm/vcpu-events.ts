/**
 * `struct kvm_vcpu_events` images for injecting a synchronous external abort (reference §3).
 * Two ABIs exist: the merged one (only `ext_dabt_pending`; KVM builds the ESR) and the posted
 * one (`ext_iabt_pending`, `ext_abt_has_esr`, `ext_abt_esr`). Every rule under which the kernel
 * answers EINVAL is checked here first, so no image the host would reject is ever produced.
 */
import koffi from 'koffi';
import { FSC_SEA, INJECTABLE_EXITS, ISS_MASK, KVM_EXIT_ARM_SEA, KVM_VCPU_EVENTS_SIZE } from './constants.js';
import { KvmError } from './errors.js';
import { type AbortKind, validateRawIss } from './iss.js';
import { KvmVcpuEventsExtAbt, KvmVcpuEventsMerged } from './layouts.js';

/** Which kvm_vcpu_events layout the host kernel accepts. */
export type InjectionAbi = 'merged' | 'ext-abt-esr';
export const INJECTION_ABIS: readonly InjectionAbi[] = ['merged', 'ext-abt-esr'];

/** What the host can accept, as the plugin declares it. */
export interface InjectionHost {
  abi: InjectionAbi;
  /** The host (and the guest's ID registers) expose FEAT_RAS. */
  ras: boolean;
}

/** An abstract injection: which abort, and optionally the ISS to start from. */
export interface InjectionRequest {
  kind: AbortKind;
  iss?: number;
  /**
   * The ISS's FSC was chosen by name (a policy's `fsc`), so FSC 0 in it is a chosen value: KVM
   * would deliver it as 0x10, which is refused like any other FSC KVM alters. Otherwise FSC 0 in a
   * raw ISS means "KVM's FSC", as in the kernel's own selftest (ISS = ISV|FnV|EA).
   */
  fscNamed?: boolean;
}

/** Options of validateVcpuEvents beyond the fields. */
export interface ValidateOptions {
  /** As InjectionRequest.fscNamed: ext_abt_esr's FSC 0 is a chosen FSC, not KVM's. */
  fscNamed?: boolean;
}

/** Every field of both layouts; fields a layout lacks must be zero/false for it. */
export interface VcpuEventsFields {
  serrorPending: boolean;
  serrorHasEsr: boolean;
  serrorEsr: bigint;
  extDabtPending: boolean;
  extIabtPending: boolean;
  extAbtHasEsr: boolean;
  extAbtEsr: bigint;
}

export const EMPTY_EVENTS: Readonly<VcpuEventsFields> = Object.freeze({
  serrorPending: false,
  serrorHasEsr: false,
  serrorEsr: 0n,
  extDabtPending: false,
  extIabtPending: false,
  extAbtHasEsr: false,
  extAbtEsr: 0n,
});

const M = {
  serrorPending: koffi.offsetof(KvmVcpuEventsMerged, 'serror_pending'),
  serrorHasEsr: koffi.offsetof(KvmVcpuEventsMerged, 'serror_has_esr'),
  extDabtPending: koffi.offsetof(KvmVcpuEventsMerged, 'ext_dabt_pending'),
  serrorEsr: koffi.offsetof(KvmVcpuEventsMerged, 'serror_esr'),
};
const X = {
  serrorPending: koffi.offsetof(KvmVcpuEventsExtAbt, 'serror_pending'),
  serrorHasEsr: koffi.offsetof(KvmVcpuEventsExtAbt, 'serror_has_esr'),
  extDabtPending: koffi.offsetof(KvmVcpuEventsExtAbt, 'ext_dabt_pending'),
  extIabtPending: koffi.offsetof(KvmVcpuEventsExtAbt, 'ext_iabt_pending'),
  extAbtHasEsr: koffi.offsetof(KvmVcpuEventsExtAbt, 'ext_abt_has_esr'),
  serrorEsr: koffi.offsetof(KvmVcpuEventsExtAbt, 'serror_esr'),
  extAbtEsr: koffi.offsetof(KvmVcpuEventsExtAbt, 'ext_abt_esr'),
};

/** Why the kernel (or the architecture) would refuse an image. */
export type EventsRule =
  | 'both-abort-kinds'
  | 'abt-esr-outside-iss'
  | 'abt-esr-without-ras'
  | 'serror-esr-without-ras'
  | 'serror-esr-outside-iss'
  | 'not-after-abort-exit'
  | 'layout-lacks-field'
  | 'fsc-altered-by-kvm';

function rejected(rule: EventsRule, message: string): KvmError {
  return new KvmError('SEAWALL_KVM_EVENTS_REJECTED', message, { rule });
}

/**
 * Applies the kernel's validation (reference §3, "Kernel validation") to a set of fields for a
 * host. `afterExit` is the exit reason the vCPU last returned; abort injection is only defined
 * after MMIO, ARM_NISV, ARM_SEA or ARM_LDST64B (INJECTABLE_EXITS).
 */
export function validateVcpuEvents(
  f: VcpuEventsFields,
  host: InjectionHost,
  afterExit: number,
  opts: ValidateOptions = {},
): void {
  if (host.abi === 'merged' && (f.extIabtPending || f.extAbtHasEsr || f.extAbtEsr !== 0n)) {
    throw new KvmError(
      'SEAWALL_KVM_ABI_UNSUPPORTED',
      'the merged kvm_vcpu_events ABI has no ext_iabt_pending, ext_abt_has_esr or ext_abt_esr: ' +
        'this host can inject only a data abort whose ESR KVM builds',
      { rule: 'layout-lacks-field' },
    );
  }
  if (f.extDabtPending && f.extIabtPending) {
    throw rejected('both-abort-kinds', 'ext_dabt_pending and ext_iabt_pending cannot both be set (EINVAL)');
  }
  if ((f.extDabtPending || f.extIabtPending) && !INJECTABLE_EXITS.has(afterExit)) {
    throw rejected(
      'not-after-abort-exit',
      `an external abort may be injected only after a KVM_EXIT_MMIO, ARM_NISV, ARM_SEA or ARM_LDST64B exit, not exit ${afterExit}`,
    );
  }
  if (f.extAbtEsr < 0n || f.extAbtEsr > BigInt(ISS_MASK)) {
    throw rejected(
      'abt-esr-outside-iss',
      `ext_abt_esr 0x${f.extAbtEsr.toString(16)} has bits outside ISS [24:0] (EINVAL)`,
    );
  }
  if (f.extAbtHasEsr && !host.ras) {
    throw rejected('abt-esr-without-ras', 'ext_abt_has_esr needs a host with FEAT_RAS (EINVAL)');
  }
  if (f.extAbtHasEsr) {
    // KVM ORs FSC 0x10 into the ISS (reference §3): an FSC without that bit reaches the guest
    // changed. FSC 0 of a raw ISS asks for KVM's 0x10; a named FSC 0 would be changed too.
    const fsc = Number(f.extAbtEsr & 0x3fn);
    if ((fsc !== 0 || opts.fscNamed === true) && (fsc | FSC_SEA) !== fsc) {
      throw rejected(
        'fsc-altered-by-kvm',
        `KVM ORs FSC 0x10 into ext_abt_esr, so FSC 0x${fsc.toString(16)} would reach the guest as 0x${(fsc | FSC_SEA).toString(16)}`,
      );
    }
  }
  if (f.serrorPending && f.serrorHasEsr) {
    if (!host.ras)
      throw rejected('serror-esr-without-ras', 'serror_has_esr needs a host with FEAT_RAS (EINVAL)');
    if (f.serrorEsr < 0n || f.serrorEsr > BigInt(ISS_MASK)) {
      throw rejected('serror-esr-outside-iss', 'serror_esr has bits outside ISS [24:0] (EINVAL)');
    }
  }
}

/** Lays validated fields out as the 64-byte image of the host's ABI; pad and reserved stay zero. */
export function layoutVcpuEvents(f: VcpuEventsFields, abi: InjectionAbi): Buffer {
  const buf = Buffer.alloc(KVM_VCPU_EVENTS_SIZE);
  const o = abi === 'merged' ? M : X;
  buf[o.serrorPending] = f.serrorPending ? 1 : 0;
  buf[o.serrorHasEsr] = f.serrorHasEsr ? 1 : 0;
  buf[o.extDabtPending] = f.extDabtPending ? 1 : 0;
  buf.writeBigUInt64LE(f.serrorEsr, o.serrorEsr);
  if (abi === 'ext-abt-esr') {
    buf[X.extIabtPending] = f.extIabtPending ? 1 : 0;
    buf[X.extAbtHasEsr] = f.extAbtHasEsr ? 1 : 0;
    buf.writeBigUInt64LE(f.extAbtEsr, X.extAbtEsr);
  }
  return buf;
}

/** Validates and lays out in one step. */
export function encodeVcpuEvents(
  f: VcpuEventsFields,
  host: InjectionHost,
  afterExit: number,
  opts: ValidateOptions = {},
): Buffer {
  validateVcpuEvents(f, host, afterExit, opts);
  return layoutVcpuEvents(f, host.abi);
}

/** Turns an abstract request into fields for the host's ABI, or the error the host would give. */
export function injectionFields(req: InjectionRequest, host: InjectionHost): VcpuEventsFields {
  if (req.kind !== 'data' && req.kind !== 'instruction') {
    throw new KvmError('SEAWALL_KVM_EVENTS_REJECTED', `unknown abort kind '${String(req.kind)}'`, {
      rule: 'kind',
    });
  }
  const iss = req.iss === undefined ? undefined : validateRawIss(req.iss);
  if (host.abi === 'merged' && (req.kind === 'instruction' || iss !== undefined)) {
    throw new KvmError(
      'SEAWALL_KVM_ABI_UNSUPPORTED',
      req.kind === 'instruction'
        ? 'the merged ABI cannot inject an instruction abort (only ext_dabt_pending exists)'
        : 'the merged ABI cannot carry a chosen ISS (KVM builds the ESR itself)',
      { rule: 'layout-lacks-field', kind: req.kind },
    );
  }
  return {
    ...EMPTY_EVENTS,
    extDabtPending: req.kind === 'data',
    extIabtPending: req.kind === 'instruction',
    extAbtHasEsr: iss !== undefined,
    extAbtEsr: BigInt(iss ?? 0),
  };
}

/** The exact image that injects `req` on `host`, or a typed error before any byte exists. */
export function encodeInjection(
  req: InjectionRequest,
  host: InjectionHost,
  afterExit = KVM_EXIT_ARM_SEA,
): Buffer {
  return encodeVcpuEvents(injectionFields(req, host), host, afterExit, { fscNamed: req.fscNamed });
}

/** Reads an image back into fields (for explain output and for plugins that print what they apply). */
export function decodeVcpuEvents(buf: Uint8Array, abi: InjectionAbi): VcpuEventsFields {
  if (buf.byteLength !== KVM_VCPU_EVENTS_SIZE) {
    throw new KvmError(
      'SEAWALL_KVM_SHORT_BUFFER',
      `kvm_vcpu_events is ${KVM_VCPU_EVENTS_SIZE} bytes, got ${buf.byteLength}`,
    );
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const o = abi === 'merged' ? M : X;
  return {
    serrorPending: b[o.serrorPending] !== 0,
    serrorHasEsr: b[o.serrorHasEsr] !== 0,
    serrorEsr: b.readBigUInt64LE(o.serrorEsr),
    extDabtPending: b[o.extDabtPending] !== 0,
    extIabtPending: abi === 'ext-abt-esr' && b[X.extIabtPending] !== 0,
    extAbtHasEsr: abi === 'ext-abt-esr' && b[X.extAbtHasEsr] !== 0,
    extAbtEsr: abi === 'ext-abt-esr' ? b.readBigUInt64LE(X.extAbtEsr) : 0n,
  };
}
