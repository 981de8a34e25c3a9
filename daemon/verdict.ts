/**
 * Decision → VERDICT. The bytes for a KVM injection come from kvm/'s encoder for the session's
 * declared ABI, so the daemon never sends an image the host would reject; images are cached per
 * (ABI, RAS, kind, ISS, exit), which makes the common verdict a map lookup and a 96-byte copy.
 */

import { assertNever, emulatedAbortEsr, encodeInjection } from '../kvm/index.js';
import {
  type Decision,
  type Downgrade,
  type EventKind,
  type HostCapabilities,
  type Injection,
  injectionCode,
  KVM_EXIT_OF_KIND,
} from '../policies/index.js';
import { ACTION, VERDICT_FLAG, type VerdictMsg } from '../protocol/index.js';

const ZERO_EVENTS = new Uint8Array(64);

export interface BuiltVerdict {
  verdict: Omit<VerdictMsg, 'type'>;
  /** Set when the daemon itself had to change the injection's path (beyond the policy's own onUnsupported). */
  downgrade: Downgrade | null;
}

/**
 * Images cached per Injection object (compiled policies share frozen decisions, so the same
 * object comes back event after event) and per (ABI, RAS, exit): a WeakMap lookup and an index.
 */
const cache = new WeakMap<Injection, (Uint8Array | undefined)[]>();
const KIND_SLOT: Readonly<Record<EventKind, number>> = { sea: 0, nisv: 1, mmio: 2, sigbus: 0 };

function kvmImage(inj: Injection, host: HostCapabilities, kind: EventKind, exit: number): Uint8Array {
  const slot = ((host.abi === 'merged' ? 0 : 2) + (host.ras ? 1 : 0)) * 3 + KIND_SLOT[kind];
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

// Decided in policies/ so that `explain` predicts the same FnV the verdict carries.
export { exitHasVa } from '../policies/index.js';

/** One verdict; every field a verdict does not use is zero (docs/protocol.md, VERDICT). */
function verdict(
  seq: number,
  action: number,
  flags: number,
  downgrade: Downgrade | null = null,
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
  vaKnown: boolean,
): BuiltVerdict {
  if (inj.via === 'emulate')
    return verdict(seq, ACTION.INJECT_EMULATED, flags, null, {
      esr: emulatedAbortEsr(inj.kind, inj.iss, vaKnown),
    });
  const exit = KVM_EXIT_OF_KIND[kind];
  if (exit === null || !kvmInject) {
    // KVM cannot take this injection here (after a SIGBUS there is no abort exit; or the host has
    // no INJECT_EXT_DABT). The VMM's own emulation is the only path left.
    const reason = exit === null ? 'sigbus_not_exit' : 'no_inject_cap';
    const detail =
      exit === null ? 'no KVM abort exit precedes a SIGBUS' : 'host lacks KVM_CAP_ARM_INJECT_EXT_DABT';
    const from = injectionCode(inj);
    if (host.emulateAbort) {
      return verdict(
        seq,
        ACTION.INJECT_EMULATED,
        flags,
        { from, to: injectionCode({ ...inj, via: 'emulate' }), reason, detail },
        { esr: emulatedAbortEsr(inj.kind, inj.iss, vaKnown) },
      );
    }
    return verdict(seq, ACTION.RESUME, flags, {
      from,
      to: 'resume',
      reason,
      detail: `${detail}, and the VMM cannot emulate aborts`,
    });
  }
  return verdict(seq, ACTION.INJECT, flags, null, { vcpuEvents: kvmImage(inj, host, kind, exit) });
}

/**
 * Builds the verdict for `decision` on event `seq` of kind `kind`; `vaKnown` says whether the exit
 * gave the plugin a guest VA (exitHasVa). Throws KvmError only on a policy bug.
 */
export function buildVerdict(
  seq: number,
  decision: Decision,
  kind: EventKind,
  host: HostCapabilities,
  kvmInject: boolean,
  vaKnown = kind === 'sea',
): BuiltVerdict {
  let flags = 0;
  if (decision.dryRun) flags |= VERDICT_FLAG.DRY_RUN;
  if (decision.downgrade) flags |= VERDICT_FLAG.DOWNGRADED;
  switch (decision.action) {
    case 'inject':
      return injection(seq, decision.inject, flags, kind, host, kvmInject, vaKnown);
    case 'kill':
      return verdict(seq, ACTION.KILL, flags, null, { graceMs: decision.graceMs });
    case 'migrate':
      flags |= VERDICT_FLAG.MIGRATING;
      if (decision.meanwhile)
        return injection(seq, decision.meanwhile, flags, kind, host, kvmInject, vaKnown);
      return verdict(seq, ACTION.RESUME, flags);
    case 'none':
      return verdict(seq, ACTION.RESUME, flags);
    default:
      return assertNever(decision, 'decision');
  }
}
