/**
 * Decision → VERDICT. The bytes for a KVM injection come from kvm/'s encoder for the session's
 * declared ABI, so the daemon never sends an image the host would reject; images are cached per
 * (ABI, RAS, kind, ISS, exit), which makes the common verdict a map lookup and a 96-byte copy.
 */

import { assertNever } from '../kvm/assert-never.js';
import {
  ESR_EC_DABT_LOW,
  ESR_EC_IABT_LOW,
  encodeInjection,
  FSC_SEA,
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_MMIO,
} from '../kvm/index.js';
import type { Decision, EventKind, HostCapabilities, Injection } from '../policies/decision.js';
import { ACTION, VERDICT_FLAG, type VerdictMsg } from '../protocol/index.js';

const ZERO_EVENTS = new Uint8Array(64);

const EXIT_OF: Readonly<Record<EventKind, number>> = {
  sea: KVM_EXIT_ARM_SEA,
  nisv: KVM_EXIT_ARM_NISV,
  mmio: KVM_EXIT_MMIO,
  sigbus: 0, // no KVM exit: KVM_SET_VCPU_EVENTS abort injection is not defined after a SIGBUS
};

/** An injection the host cannot take as asked, and what the verdict did instead. */
export interface VerdictDowngrade {
  from: string;
  to: string;
  reason: string;
}

export interface BuiltVerdict {
  verdict: Omit<VerdictMsg, 'type'>;
  /** Set when the daemon itself had to change the injection's path (beyond the policy's own onUnsupported). */
  downgrade: VerdictDowngrade | null;
}

/**
 * Images cached per Injection object (compiled policies share frozen decisions, so the same
 * object comes back event after event) and per (ABI, RAS, exit): a WeakMap lookup and an index.
 */
const cache = new WeakMap<Injection, (Uint8Array | undefined)[]>();
const EXIT_SLOT: Readonly<Record<number, number>> = {
  [KVM_EXIT_ARM_SEA]: 0,
  [KVM_EXIT_ARM_NISV]: 1,
  [KVM_EXIT_MMIO]: 2,
};

function kvmImage(inj: Injection, host: HostCapabilities, exit: number): Uint8Array {
  const slot = ((host.abi === 'merged' ? 0 : 2) + (host.ras ? 1 : 0)) * 3 + (EXIT_SLOT[exit] ?? 0);
  let images = cache.get(inj);
  if (!images) {
    images = [];
    cache.set(inj, images);
  }
  let image = images[slot];
  if (!image) {
    image = encodeInjection({ kind: inj.kind, iss: inj.iss }, host, exit);
    images[slot] = image;
  }
  return image;
}

/**
 * The ESR a VMM writes when it emulates the abort: EC for an abort from a lower EL (the plugin
 * switches to the current-EL class when the guest was at EL1, as KVM does), IL set, and the ISS
 * (FSC 0x10 when the policy chose none).
 */
export function emulatedEsr(inj: Injection): bigint {
  const ec = inj.kind === 'data' ? ESR_EC_DABT_LOW : ESR_EC_IABT_LOW;
  let iss = inj.iss ?? FSC_SEA;
  if ((iss & 0x3f) === 0) iss |= FSC_SEA;
  return (BigInt(ec) << 26n) | (1n << 25n) | BigInt(iss);
}

/** One verdict; every field a verdict does not use is zero (docs/protocol.md, VERDICT). */
function verdict(
  seq: number,
  action: number,
  flags: number,
  downgrade: VerdictDowngrade | null = null,
  fields: { graceMs?: number; esr?: bigint; vcpuEvents?: Uint8Array } = {},
): BuiltVerdict {
  return {
    verdict: {
      seq,
      action,
      flags: downgrade ? flags | VERDICT_FLAG.DOWNGRADED : flags,
      graceMs: fields.graceMs ?? 0,
      esr: fields.esr ?? 0n,
      vcpuEvents: fields.vcpuEvents ?? ZERO_EVENTS,
    },
    downgrade,
  };
}

function injection(
  seq: number,
  inj: Injection,
  flags: number,
  kind: EventKind,
  host: HostCapabilities,
  kvmInject: boolean,
): BuiltVerdict {
  const exit = EXIT_OF[kind];
  if (inj.via === 'kvm' && (exit === 0 || !kvmInject)) {
    // KVM cannot take this injection here (after a SIGBUS there is no abort exit; or the host has
    // no INJECT_EXT_DABT). The VMM's own emulation is the only path left.
    const reason =
      exit === 0 ? 'no KVM abort exit precedes a SIGBUS' : 'host lacks KVM_CAP_ARM_INJECT_EXT_DABT';
    if (host.emulateAbort) {
      return verdict(
        seq,
        ACTION.INJECT_EMULATED,
        flags,
        { from: 'inject-kvm', to: 'inject-emulated', reason },
        { esr: emulatedEsr(inj) },
      );
    }
    return verdict(seq, ACTION.RESUME, flags, {
      from: 'inject-kvm',
      to: 'resume',
      reason: `${reason}, and the VMM cannot emulate aborts`,
    });
  }
  if (inj.via === 'emulate')
    return verdict(seq, ACTION.INJECT_EMULATED, flags, null, { esr: emulatedEsr(inj) });
  return verdict(seq, ACTION.INJECT, flags, null, { vcpuEvents: kvmImage(inj, host, exit) });
}

/** Builds the verdict for `decision` on event `seq` of kind `kind`. Throws KvmError only on a policy bug. */
export function buildVerdict(
  seq: number,
  decision: Decision,
  kind: EventKind,
  host: HostCapabilities,
  kvmInject: boolean,
): BuiltVerdict {
  let flags = 0;
  if (decision.dryRun) flags |= VERDICT_FLAG.DRY_RUN;
  if (decision.downgrade) flags |= VERDICT_FLAG.DOWNGRADED;
  switch (decision.action) {
    case 'inject':
      return injection(seq, decision.inject, flags, kind, host, kvmInject);
    case 'kill':
      return verdict(seq, ACTION.KILL, flags, null, { graceMs: decision.graceMs });
    case 'migrate':
      flags |= VERDICT_FLAG.MIGRATING;
      if (decision.meanwhile) return injection(seq, decision.meanwhile, flags, kind, host, kvmInject);
      return verdict(seq, ACTION.RESUME, flags);
    case 'none':
      return verdict(seq, ACTION.RESUME, flags);
    default:
      return assertNever(decision, 'decision');
  }
}
