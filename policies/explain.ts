/**
 * `explain`: the decision for one event and why — the rule that matched, and for every earlier
 * rule the first matcher that failed with the values compared — plus the kvm_vcpu_events image
 * the verdict would carry. It scans every rule in file order (not the label index) so each
 * skipped rule gets its reason; `decide` must and does reach the same rule.
 */
import {
  emulatedAbortEsr,
  encodeInjection,
  type GuestAbort,
  guestAbortAfterEmulation,
  guestAbortAfterKvm,
  type InjectionAbi,
} from '../kvm/index.js';
import { contextIndex, describeAction, routeOf } from './actions.js';
import type { CompiledPolicy, CompiledRule } from './compile.js';
import {
  type Decision,
  exitHasVa,
  type HostCapabilities,
  type Injection,
  KVM_EXIT_OF_KIND,
  type PolicyEvent,
} from './decision.js';
import type { Matcher } from './matchers.js';

/** Why one earlier rule did not match. */
export interface RuleMiss {
  rule: string;
  index: number;
  matcher: string;
  expected: string;
  actual: string;
}

export interface Explanation {
  policy: { name: string; version: string; dryRun: boolean };
  host: HostCapabilities;
  decision: Decision;
  /** The action in words, as it will be carried out. */
  summary: string;
  matched: { rule: string; index: number | null };
  notMatched: RuleMiss[];
  /** The verdict's kvm_vcpu_events image when the answer injects via KVM, else null. */
  vcpuEvents: { abi: InjectionAbi; hex: string } | null;
  /**
   * The abort the guest receives when the answer injects, for a guest at EL1 (kvm/guest-abort.ts):
   * its vector offset from VBAR_EL1, ESR_EL1 [31:0], the same as Linux 6.1's KVM injection leaves
   * it (bits [63:32] copy bit 31), and FAR_EL1: the event's `gva`, or null when the guest reads an
   * address the event does not give. Null otherwise.
   */
  guest: { vectorOffset: number; esr: bigint; esrOnLinux61: bigint; far: bigint | null } | null;
}

/** The abort the guest receives, following the verdict the daemon builds (daemon/verdict.ts). */
function guestSees(inj: Injection | null, event: PolicyEvent, host: HostCapabilities): Explanation['guest'] {
  if (!inj) return null;
  const far = event.gva ?? null;
  let g: GuestAbort;
  if (inj.via === 'kvm' && event.kind !== 'sigbus')
    g = guestAbortAfterKvm(inj.kind, 1, far, inj.iss, '6.1.0');
  else if (inj.via === 'emulate' || host.emulateAbort) {
    // FnV as the daemon's verdict sets it, from the exit alone: clear for a SEA exit whose own ESR
    // has FnV clear, and FAR_EL1 is then the exit's guest VA (unknown, null, when the event gives
    // no gva); otherwise FnV set and the VMM writes FAR_EL1 as 0 (docs/protocol.md §5.1).
    const va = exitHasVa(event.kind, event.esr?.raw ?? null);
    g = guestAbortAfterEmulation(emulatedAbortEsr(inj.kind, inj.iss, va), 1, va ? far : 0n);
  } else return null; // a KVM injection after a SIGBUS: the verdict resumes, nothing is injected
  const signExtended = g.esrUpper === 'linux-6.1-sign-extended' && (g.esr & 0x80000000n) !== 0n;
  return {
    vectorOffset: g.vectorOffset,
    esr: g.esr,
    esrOnLinux61: signExtended ? g.esr | 0xffffffff00000000n : g.esr,
    far: g.far,
  };
}

function answeredInjection(d: Decision): Injection | null {
  if (d.action === 'inject') return d.inject;
  if (d.action === 'migrate') return d.meanwhile;
  return null;
}

function firstMiss(rule: CompiledRule, event: PolicyEvent, policy: CompiledPolicy): Matcher | null {
  for (const m of rule.matchers) if (!m.test(event, policy.state)) return m;
  return null;
}

export function explainEvent(
  policy: CompiledPolicy,
  event: PolicyEvent,
  host: HostCapabilities,
): Explanation {
  const notMatched: RuleMiss[] = [];
  let matched: CompiledRule = policy.defaultRule;
  for (const rule of policy.rules) {
    const miss = firstMiss(rule, event, policy);
    if (miss === null) {
      matched = rule;
      break;
    }
    notMatched.push({
      rule: rule.name,
      index: rule.index,
      matcher: miss.name,
      expected: miss.expected,
      actual: miss.actual(event, policy.state),
    });
  }
  const decision = matched.decision(contextIndex(host, routeOf(event)));
  const inj = answeredInjection(decision);
  let vcpuEvents: Explanation['vcpuEvents'] = null;
  const exit = KVM_EXIT_OF_KIND[event.kind];
  if (inj && inj.via === 'kvm' && exit !== null) {
    const image = encodeInjection({ kind: inj.kind, iss: inj.iss }, { abi: host.abi, ras: host.ras }, exit);
    vcpuEvents = { abi: host.abi, hex: image.toString('hex') };
  }
  return {
    policy: { name: policy.name, version: policy.version, dryRun: policy.dryRun },
    host,
    decision,
    summary: describeAction(decision),
    matched: { rule: matched.name, index: matched.index < 0 ? null : matched.index },
    notMatched,
    vcpuEvents,
    guest: guestSees(inj, event, host),
  };
}
