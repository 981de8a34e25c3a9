/**
 * Compiles a rule's action and `onUnsupported` into one answer per host situation. A host is
 * one of 8 capability combinations (ABI × RAS × VMM emulation) and an event reaches it by one
 * of 3 routes (a KVM exit, a SIGBUS on a vCPU thread, a SIGBUS with no vCPU): 24 contexts,
 * all resolved at load by asking kvm/ whether the host would take the injection. Per event the
 * engine only indexes this table.
 */
import {
  encodeInjection,
  encodeIss,
  type InjectionAbi,
  isKvmError,
  type KvmError,
  validateRawIss,
} from '../kvm/index.js';
import type {
  ActionDecision,
  Decision,
  Downgrade,
  DowngradeReason,
  HostCapabilities,
  Injection,
  PolicyEvent,
} from './decision.js';
import type { ActionSpec, InjectSpec, OnUnsupportedOption } from './schema.js';

/** How an event reached the daemon; a SIGBUS is not a KVM exit, so KVM cannot inject after it. */
export type Route = 'exit' | 'sigbus-vcpu' | 'sigbus-novcpu';
const ROUTES: readonly Route[] = ['exit', 'sigbus-vcpu', 'sigbus-novcpu'];
const ABIS: readonly InjectionAbi[] = ['merged', 'ext-abt-esr'];

export const CONTEXT_COUNT = 24;

/** Index of (host, route) in a 24-entry table. */
export function contextIndex(host: HostCapabilities, route: Route): number {
  const h = (host.abi === 'ext-abt-esr' ? 4 : 0) | (host.ras ? 2 : 0) | (host.emulateAbort ? 1 : 0);
  return h * 3 + (route === 'exit' ? 0 : route === 'sigbus-vcpu' ? 1 : 2);
}

export function routeOf(event: PolicyEvent): Route {
  if (event.kind !== 'sigbus') return 'exit';
  return event.vcpu === null ? 'sigbus-novcpu' : 'sigbus-vcpu';
}

/** Every (host, route) pair, in table order. */
export function allContexts(): { host: HostCapabilities; route: Route }[] {
  const out: { host: HostCapabilities; route: Route }[] = [];
  for (const abi of ABIS)
    for (const ras of [false, true])
      for (const emulateAbort of [false, true])
        for (const route of ROUTES) out.push({ host: { abi, ras, emulateAbort }, route });
  return out;
}

/** An action as answered in one context, with the downgrade that got it there, if any. */
export interface Outcome {
  decision: ActionDecision;
  downgrade?: Downgrade;
}

/** The short code of an injection: dabt, iabt_esr, emul_dabt … (see `Downgrade`). */
export function injectionCode(inj: Injection): string {
  return `${inj.via === 'emulate' ? 'emul_' : ''}${inj.kind === 'data' ? 'dabt' : 'iabt'}${inj.iss === undefined ? '' : '_esr'}`;
}

/** The short code of an action's answer: its injection's code, or kill, migrate, none. */
export function actionCode(d: ActionDecision): string {
  if (d.action === 'inject') return injectionCode(d.inject);
  return d.action;
}

/** Human form of an injection for downgrade records and explain output. */
export function describeInjection(inj: Injection): string {
  const iss = inj.iss === undefined ? 'ESR built by KVM' : `ISS 0x${inj.iss.toString(16)}`;
  return `inject ${inj.kind} abort (${iss}) via ${inj.via}`;
}

export function describeAction(d: ActionDecision): string {
  switch (d.action) {
    case 'inject':
      return describeInjection(d.inject);
    case 'kill':
      return `kill (grace ${d.graceMs} ms)`;
    case 'migrate':
      return `${d.scope === 'host' ? 'evacuate the host' : 'migrate'} via hook ${d.hook} (meanwhile ${d.meanwhile ? describeInjection(d.meanwhile) : 'none'})`;
    case 'none':
      return 'none';
  }
}

/**
 * What a dry-run decision would have done, in words, for the operator reading a dry run: its
 * action with every parameter (a migration's next step too), and the downgrade this host would
 * have needed for it. The journal entry and the stored event carry the same text.
 */
export function describeWouldHave(dry: NonNullable<Decision['dryRun']>): string {
  const w = dry.wouldHave;
  let text = describeAction(w);
  if (w.action === 'migrate') text += `, on failure ${describeAction(w.onFailure)}`;
  const down = dry.downgrade;
  if (down) text += `, downgraded from ${down.from} (${down.reason})`;
  return text;
}

type Refusal = { reason: DowngradeReason; detail: string };

/** The reason code for kvm/'s refusal of an injection. */
function reasonOf(err: KvmError, inj: Injection): DowngradeReason {
  switch (err.detail.rule) {
    case 'layout-lacks-field':
      return inj.kind === 'instruction' ? 'merged_abi_no_iabt' : 'merged_abi_no_esr';
    case 'abt-esr-without-ras':
      return 'no_ras';
    case 'fsc-altered-by-kvm':
      return 'fsc_altered';
    default:
      return 'kvm_rejected';
  }
}

/** Why KVM cannot inject `inj` in this context, or null when it can. */
function kvmRefusal(inj: Injection, host: HostCapabilities, route: Route, fscNamed: boolean): Refusal | null {
  if (route === 'sigbus-novcpu')
    return {
      reason: 'sigbus_no_vcpu',
      detail: 'a SIGBUS with no vCPU (BUS_MCEERR_AO) has no vCPU to inject into',
    };
  if (route === 'sigbus-vcpu') {
    return {
      reason: 'sigbus_not_exit',
      detail:
        'a SIGBUS is not a KVM exit: KVM takes an injected abort only right after an MMIO, NISV or SEA exit',
    };
  }
  try {
    encodeInjection({ kind: inj.kind, iss: inj.iss, fscNamed }, { abi: host.abi, ras: host.ras });
    return null;
  } catch (err) {
    if (isKvmError(err)) return { reason: reasonOf(err, inj), detail: err.message };
    throw err;
  }
}

type Resolved = { injection: Injection | null; downgrade?: Downgrade } | { replace: Outcome };

/**
 * Applies `onUnsupported` to one injection the host's KVM cannot take. `fscNamed`: the ISS's FSC
 * was named (`fsc:`), so an FSC of 0 is wanted as such. Neither KVM (which ORs in 0x10) nor the
 * VMM's emulation (whose ESR gets FSC 0x10 when its ISS has none: kvm/'s emulatedAbortEsr) can
 * deliver that, so it is unsupported everywhere and `emulate` is passed over for it.
 */
function resolveInjection(
  wanted: Injection,
  host: HostCapabilities,
  route: Route,
  options: readonly OnUnsupportedOption[],
  fscNamed: boolean,
): Resolved {
  const refusal = kvmRefusal(wanted, host, route, fscNamed);
  if (refusal === null) return { injection: wanted };
  const from = injectionCode(wanted);
  const emulable = !(fscNamed && ((wanted.iss ?? 0) & 0x3f) === 0);
  for (const option of options) {
    if (option === 'emulate') {
      if (!host.emulateAbort || route === 'sigbus-novcpu' || !emulable) continue;
      const injection: Injection = { ...wanted, via: 'emulate' };
      return { injection, downgrade: { from, to: injectionCode(injection), ...refusal } };
    }
    if (option === 'downgrade') {
      // The data abort every host can give: KVM's after a KVM exit. After a SIGBUS KVM injects
      // nothing, so it is the VMM's emulated one when the VMM emulates and a vCPU took the error —
      // the same substitute a host without INJECT_EXT_DABT gets (docs/protocol.md §6) — else none.
      const injection: Injection | null =
        route === 'exit'
          ? { kind: 'data', via: 'kvm' }
          : route === 'sigbus-vcpu' && host.emulateAbort
            ? { kind: 'data', via: 'emulate' }
            : null;
      return {
        injection,
        downgrade: { from, to: injection ? injectionCode(injection) : 'none', ...refusal },
      };
    }
    const decision = actionFor(option, host, route, ['downgrade']).decision;
    return { replace: { decision, downgrade: { from, to: actionCode(decision), ...refusal } } };
  }
  // The schema refuses lists without a terminal option; this keeps the table total anyway.
  return { injection: null, downgrade: { from, to: 'none', ...refusal } };
}

/** ISS [24:0] a validated spec chooses, or undefined to let KVM build the ESR (no ISS keys). */
export function issOf(spec: InjectSpec): number | undefined {
  if (spec.iss !== undefined) return validateRawIss(spec.iss);
  const named = [spec.set, spec.fnv, spec.ea, spec.cm, spec.wnr, spec.fsc].some((v) => v !== undefined);
  return named ? encodeIss(spec, spec.abort) : undefined;
}

/** Whether `spec` names its FSC (`fsc:`) rather than giving a raw `iss` or KVM's default. */
function fscNamed(spec: InjectSpec): boolean {
  return spec.iss === undefined && spec.fsc !== undefined;
}

function injectionOf(spec: InjectSpec): Injection {
  const iss = issOf(spec);
  return iss === undefined ? { kind: spec.abort, via: 'kvm' } : { kind: spec.abort, iss, via: 'kvm' };
}

/** The outcome of `action` in one context. */
export function actionFor(
  action: ActionSpec,
  host: HostCapabilities,
  route: Route,
  options: readonly OnUnsupportedOption[],
): Outcome {
  switch (action.type) {
    case 'none':
      return { decision: { action: 'none' } };
    case 'kill':
      return { decision: { action: 'kill', graceMs: action.grace } };
    case 'inject': {
      const r = resolveInjection(injectionOf(action), host, route, options, fscNamed(action));
      if ('replace' in r) return r.replace;
      const decision: ActionDecision = r.injection
        ? { action: 'inject', inject: r.injection }
        : { action: 'none' };
      return r.downgrade ? { decision, downgrade: r.downgrade } : { decision };
    }
    case 'migrate': {
      const onFailure =
        action.onFailure.type === 'kill'
          ? ({ action: 'kill', graceMs: action.onFailure.grace } as const)
          : ({ action: 'none' } as const);
      const base = { action: 'migrate', hook: action.hook, scope: action.scope, onFailure } as const;
      if (action.meanwhile === 'none') return { decision: { ...base, meanwhile: null } };
      const meanwhile = action.meanwhile;
      const r = resolveInjection(injectionOf(meanwhile), host, route, options, fscNamed(meanwhile));
      if ('replace' in r) return r.replace;
      const decision: ActionDecision = { ...base, meanwhile: r.injection };
      return r.downgrade ? { decision, downgrade: r.downgrade } : { decision };
    }
  }
}

/** The built-in answer: a data abort with KVM's ESR after a KVM exit, nothing after a SIGBUS. */
export function builtinOutcome(route: Route): ActionDecision {
  return route === 'exit' ? { action: 'inject', inject: { kind: 'data', via: 'kvm' } } : { action: 'none' };
}
