/**
 * What a migration hook is sent (hook-types.ts `MigrationPayload`): the VM, the rule and the event
 * that asked for it, and the VM's poisoned pages (poisoned-pages.ts: memory and the store). Built
 * when the hook starts, so the pages are the latest known.
 */
import type { SessionInfo } from '../events/index.js';
import type { PolicyEvent } from '../policies/index.js';
import type { HookResult, HookRunner, MigrationPayload } from './hook-types.js';
import type { PageList, PoisonedPagesProvider } from './poisoned-pages.js';

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** A migration as the manager holds it. */
export interface PayloadSource {
  record: { migrationId: string; rule: string; policyVersion: string; queuedAtMs: number };
  session: SessionInfo;
  decision: { scope: MigrationPayload['scope'] };
  /** The event whose decision asked (of another VM, for a host-scope rule). */
  event: PolicyEvent;
}

/** The payload: at once when the pages are at hand (memory alone), once read when the store is asked. */
export function migrationPayload(
  m: PayloadSource,
  host: string,
  pages: PoisonedPagesProvider,
): MigrationPayload | Promise<MigrationPayload> {
  const known = pages.pages(m.session.vm.id);
  return known instanceof Promise ? known.then((k) => build(m, host, k)) : build(m, host, known);
}

/** Runs the hook with the payload, as soon as it is built. */
export function runHook(
  hook: HookRunner,
  payload: MigrationPayload | Promise<MigrationPayload>,
  stop: AbortSignal,
): Promise<HookResult> {
  return payload instanceof Promise ? payload.then((p) => hook.run(p, stop)) : hook.run(payload, stop);
}

function build(m: PayloadSource, host: string, known: PageList): MigrationPayload {
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
