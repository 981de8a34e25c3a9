/**
 * The decision of last resort: inject a data abort whose ESR KVM builds — the one injection every
 * 6.19 host supports — for aborts; nothing to apply for an action-optional SIGBUS. It answers when
 * the configured policy throws on an event (a bug, counted and logged), so a guest is never left
 * stalled because of the daemon.
 */
import type { Decision, PolicyEvent } from '../policies/index.js';

export const SAFE_POLICY_VERSION = 'safe-default';

export function safeDecision(
  event: PolicyEvent,
  policyVersion = SAFE_POLICY_VERSION,
  rule = 'safe-default',
): Decision {
  if (event.kind === 'sigbus' && event.sigbusCode === 'BUS_MCEERR_AO')
    return { policyVersion, rule, action: 'none' };
  return { policyVersion, rule, action: 'inject', inject: { kind: 'data', via: 'kvm' } };
}
