/**
 * `explain`: the decision for one event and why — the rule that matched, and for every earlier
 * rule the first matcher that failed with the values compared — plus the kvm_vcpu_events image
 * the verdict would carry. It scans every rule in file order (not the label index) so each
 * skipped rule gets its reason; `decide` must and does reach the same rule.
 */
import { encodeInjection, type InjectionAbi } from '../kvm/index.js';
import { contextIndex, describeAction, routeOf } from './actions.js';
import type { CompiledPolicy, CompiledRule } from './compile.js';
import {
  type Decision,
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
  const decision = matched.decisions[contextIndex(host, routeOf(event))] as Decision;
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
  };
}
