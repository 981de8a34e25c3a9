/**
 * The decision of last resort: inject a data abort whose ESR KVM builds — the one injection every
 * 6.19 host supports — for aborts; nothing to apply for an action-optional SIGBUS. It answers when
 * the configured policy throws on an event (a bug, counted and logged), so a guest is never left
 * stalled because of the daemon.
 */
import type { Decision, PolicyEvent } from '../policies/index.js';

export const SAFE_POLICY_VERSION = 'safe-default';

/**
 * The decision for an event of an attached vCPU whose kvm_run page shows no abort exit: nothing is
 * injected (reference §3), the vCPU resumes; the policy is not asked, its input being the plugin's.
 */
export function notAbortDecision(policyVersion: string): Decision {
  return { policyVersion, rule: NOT_ABORT_RULE, action: 'none' };
}

/** The rule named in the record and metrics of a {@link notAbortDecision}. */
export const NOT_ABORT_RULE = 'kernel-exit-not-abort';

export function safeDecision(
  event: PolicyEvent,
  policyVersion = SAFE_POLICY_VERSION,
  rule = 'safe-default',
): Decision {
  if (event.kind === 'sigbus' && event.sigbusCode === 'BUS_MCEERR_AO')
    return { policyVersion, rule, action: 'none' };
  return { policyVersion, rule, action: 'inject', inject: { kind: 'data', via: 'kvm' } };
}
