/**
 * Actions subscribe to the event bus like any other sink (rasdaemon's shape): the pipeline never
 * calls them. Sessions open and close pidfds; after the verdicts are written, the batch's poisoned
 * pages are noted (a Set insert) and the kill and migrate decisions are handed to their managers
 * on the next turn of the event loop — nothing here can delay a verdict. Until then each such
 * decision holds its session's pidfd: a session that closes in between (a plugin whose deadline
 * passed closes and reconnects) still has the process its kill is for.
 */
import { type EventRecord, poisonsPage, type Sink } from '../events/index.js';
import type { KillManager } from './kill-manager.js';
import type { MigrationManager } from './migration-manager.js';
import type { PoisonedPages } from './poisoned-pages.js';

export interface ActionSinkParts {
  kills: KillManager;
  migrations: MigrationManager;
  /** Tracker fed from every event with a GPA; null when a provider elsewhere (the store) keeps them. */
  pages: PoisonedPages | null;
}

export function actionSink(parts: ActionSinkParts): Sink {
  let pending: EventRecord[] = [];
  let scheduled = false;
  /** Records whose session's pidfd this sink holds until their decision is handed over. */
  const held = new Set<EventRecord>();
  const act = () => {
    scheduled = false;
    const batch = pending;
    pending = [];
    const releaseAfter: bigint[] = [];
    for (const r of batch) {
      const d = r.decision;
      if (!d) continue;
      if (held.delete(r)) releaseAfter.push(r.session.id);
      if (d.action === 'kill') {
        parts.kills.request({
          session: r.session,
          seq: r.msg.seq,
          rule: d.rule,
          policyVersion: d.policyVersion,
          graceMs: d.graceMs,
          reason: 'policy',
        });
      } else if (d.action === 'migrate') {
        if (d.scope === 'host') parts.migrations.evacuate(d, r.event, r.session, r.msg.seq);
        else parts.migrations.trigger(r.session, d, r.event, r.msg.seq);
      }
    }
    // The managers hold what they still need by now.
    for (const id of releaseAfter) parts.kills.release(id);
  };
  return {
    name: 'actions',
    sessionOpened: (s) => {
      parts.kills.sessionOpened(s, s.peerPidfd);
      parts.migrations.sessionOpened(s);
    },
    sessionClosed: (s, outcome) => {
      // Migrations first: one kept for the VM's next session holds the pidfd past the end.
      parts.migrations.sessionClosed(s, outcome);
      parts.kills.sessionClosed(s, outcome);
    },
    afterReply(batch) {
      for (const r of batch) {
        if (parts.pages && poisonsPage(r)) parts.pages.add(r.event.vm.id, r.event.gpa as bigint);
        // Only what the verdict said is acted on: under dry run `action` is the answer sent.
        if (r.decision?.action === 'kill' || r.decision?.action === 'migrate') {
          pending.push(r);
          if (parts.kills.hold(r.session.id)) held.add(r);
        }
      }
      if (pending.length > 0 && !scheduled) {
        scheduled = true;
        setImmediate(act);
      }
    },
  };
}
