/**
 * What a migration hook is sent (hook-types.ts `MigrationPayload`): the VM, the rule and the event
 * that asked for it, and the VM's poisoned pages as far as they are remembered. Built when the
 * hook starts, so the pages are the latest known.
 */
import type { SessionInfo } from '../events/index.js';
import type { PolicyEvent } from '../policies/index.js';
import type { MigrationPayload } from './hook-types.js';
import type { PoisonedPagesProvider } from './poisoned-pages.js';

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** A migration as the manager holds it. */
export interface PayloadSource {
  record: { migrationId: string; rule: string; policyVersion: string; queuedAtMs: number };
  session: SessionInfo;
  decision: { scope: MigrationPayload['scope'] };
  /** The event whose decision asked (of another VM, for a host-scope rule). */
  event: PolicyEvent;
}

export function migrationPayload(
  m: PayloadSource,
  host: string,
  pages: PoisonedPagesProvider,
): MigrationPayload {
  const known = pages.pages(m.session.vm.id);
  return {
    migrationId: m.record.migrationId,
    vm: { id: m.session.vm.id, labels: m.session.vm.labels },
    host,
    reason: 'policy',
    scope: m.decision.scope,
    rule: m.record.rule,
    policyVersion: m.record.policyVersion,
    event: {
      vm: m.event.vm.id,
      kind: m.event.kind,
      vcpu: m.event.vcpu,
      gpa: m.event.gpa === null ? null : hex(m.event.gpa),
      severity: m.event.severity,
      timeMs: m.event.timeMs,
    },
    poisonedPages: known.pages.map(hex),
    poisonedPagesTruncated: known.truncated,
    requestedAt: new Date(m.record.queuedAtMs).toISOString(),
  };
}
