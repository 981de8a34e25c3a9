/**
 * Where kill and migration outcomes go: the store's actions table (a row when the action starts,
 * its outcome when it ends), Prometheus, and journald with MESSAGE_IDs VM_KILLED / VM_MIGRATION;
 * and where a migration payload reads the VM's stored poisoned pages (the store's reader thread).
 * Kept out of the composition root so service.ts only wires.
 */

import type { ActionCallbacks } from '../actions/index.js';
import type { SeawallMetrics } from '../metrics/index.js';
import type { ActionRecord, EventStore, StoreReader } from '../store/index.js';
import { JournalField as F } from '../systemd/index.js';
import { type DaemonLog, MessageId, Priority } from './log.js';
import { storedPages } from './sinks/poisoned-page-counts.js';

export function actionReporting(
  { store, reader }: { store: () => EventStore | null; reader: () => StoreReader | null },
  metrics: SeawallMetrics | null,
  log: DaemonLog,
): Pick<ActionCallbacks, 'kill' | 'migration' | 'storedPages'> {
  // Actions under way; each ends once (kills by their id, migrations by theirs).
  const killRows = new Map<number, ActionRecord>();
  const migrationRows = new Map<string, ActionRecord>();
  return {
    storedPages: (vm, most) => {
      const r = reader();
      return r ? storedPages(r, vm, most) : null;
    },
    kill: {
      onStarted: (k) => {
        const row = store()?.recordAction({
          vm: k.vm,
          action: 'kill',
          rule: k.rule,
          outcome: 'requested',
          detail: `${k.reason}; grace ${k.graceMs} ms; pid ${k.peerPid}`,
          timeMs: k.startedAtMs,
          event: k.seq === null ? null : { sessionId: k.sessionId, seq: k.seq },
        });
        if (row !== undefined) killRows.set(k.id, row);
      },
      onFinished: (k) => {
        const row = killRows.get(k.id);
        killRows.delete(k.id);
        // Kill decisions of the session that came while this one ran were folded into it.
        const detail = withFolded(k.detail, k.coalesced, ['kill decision', 'kill decisions']);
        if (row !== undefined) store()?.actionEnded(row, k.outcome, detail);
        metrics?.kill(k.outcome);
        log.log({
          message: `VM ${k.vm} kill (${k.reason}, rule ${k.rule}, grace ${k.graceMs} ms): ${k.outcome}${detail ? ` — ${detail}` : ''}`,
          priority: k.outcome === 'failed' ? Priority.ERR : Priority.WARNING,
          messageId: MessageId.VM_KILLED,
          fields: { [F.VM]: k.vm, [F.RULE]: k.rule, [F.OUTCOME]: k.outcome, [F.REASON]: k.reason },
        });
      },
      onPidMismatch: (s) =>
        log.log({
          message: `VM ${s.vm.id}: HELLO says vmm_pid ${s.vmmPid}, the kernel says ${s.peer.pid}; kills go to ${s.peer.pid}`,
          priority: Priority.WARNING,
          fields: { [F.VM]: s.vm.id, [F.REASON]: 'pid_mismatch' },
        }),
      onPidfdError: (s, err) =>
        log.log({
          message: `VM ${s.vm.id}: no pidfd for pid ${s.peer.pid}, kills cannot be enforced: ${(err as Error).message}`,
          priority: Priority.ERR,
          fields: { [F.VM]: s.vm.id, [F.REASON]: 'pidfd_open' },
        }),
    },
    migration: {
      onStarted: (m) => {
        const row = store()?.recordAction({
          vm: m.vm,
          action: 'migrate',
          rule: m.rule,
          outcome: 'requested',
          detail: `hook ${m.hook}; id ${m.migrationId}`,
          timeMs: m.queuedAtMs,
          event: m.seq === null ? null : { sessionId: m.sessionId, seq: m.seq },
        });
        if (row !== undefined) migrationRows.set(m.migrationId, row);
      },
      onFinished: (m) => {
        const row = migrationRows.get(m.migrationId);
        migrationRows.delete(m.migrationId);
        const detail = withFolded(m.detail ?? null, m.coalesced, ['trigger', 'triggers']);
        if (row !== undefined) store()?.actionEnded(row, m.outcome, detail);
        metrics?.migration(m.outcome);
        log.log({
          message: `VM ${m.vm} migration via ${m.hook} (rule ${m.rule}): ${m.outcome}${detail ? ` — ${detail}` : ''}${m.onFailure ? `; next step: ${m.onFailure}` : ''}`,
          priority: m.outcome === 'accepted' ? Priority.NOTICE : Priority.WARNING,
          messageId: MessageId.VM_MIGRATION,
          fields: { [F.VM]: m.vm, [F.RULE]: m.rule, [F.OUTCOME]: m.outcome },
        });
      },
      // A storm's every later error of a VM asks again while the queue stays full: counted each
      // time, logged within the notices' per-minute bound.
      onDropped: (vm, hook) => {
        metrics?.migration('dropped');
        log.notice('hook_queue_full', {
          message: `VM ${vm}: migration via ${hook} dropped, the hook queue is full`,
          priority: Priority.WARNING,
          fields: { [F.VM]: vm, [F.REASON]: 'hook_queue_full' },
        });
      },
    },
  };
}

/** An outcome's detail, with how many later requests were folded into it (docs/actions.md). */
function withFolded(detail: string | null, coalesced: number, [one, many]: [string, string]): string | null {
  const folded = coalesced > 0 ? `${coalesced} later ${coalesced === 1 ? one : many} folded in` : null;
  return [detail, folded].filter((d) => d !== null).join('; ') || null;
}
