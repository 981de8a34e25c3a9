/**
 * journald as a sink: one structured entry per event (event, decision and verdict together, with
 * MESSAGE_ID MEMORY_ERROR), plus entries for downgrades, protocol errors and session ends. Field
 * names are systemd/'s JournalField constants; hex values are written as 0x… strings.
 */

import type { EventRecord, Sink } from '../../events/index.js';
import { describeAction, describeWouldHave } from '../../policies/index.js';
import { JournalField as F, type JournalPriority } from '../../systemd/index.js';
import { type DaemonLog, MessageId, Priority } from '../log.js';

const hex = (v: bigint | null | undefined): string | undefined =>
  v === null || v === undefined ? undefined : `0x${v.toString(16)}`;

/** SESSION_CLOSED entries logged per minute; the rest are counted in one `log_rate_limit` entry. */
export const SESSION_ENDS_PER_MINUTE = 120;

function priorityOf(r: EventRecord): JournalPriority {
  if (r.decision?.action === 'kill' || r.event.severity === 'uc') return Priority.ERR;
  if (r.decision?.action === 'none' || r.replay) return Priority.NOTICE;
  return Priority.WARNING;
}

export function journalSink(log: DaemonLog): Sink {
  return {
    name: 'journal',
    afterReply(batch) {
      for (const r of batch) {
        if (r.duplicate) continue;
        if (log.eventMode === 'summary') {
          log.countEvent(r.decision ? r.decision.action : 'fallback', r.event.vm.id);
          continue;
        }
        if (!log.admitEvent(r.event.vm.id)) continue;
        const e = r.event;
        const d = r.decision;
        const what = d ? describeAction(d) : `handled by plugin fallback (action ${r.msg.fallbackAction})`;
        const event = {
          [F.VM]: e.vm.id,
          [F.VCPU]: e.vcpu ?? undefined,
          [F.SEQ]: r.msg.seq,
          [F.EVENT_KIND]: e.kind,
          [F.ESR]: hex(e.esr?.raw),
          [F.EC]: e.esr ? `0x${e.esr.ec.toString(16)}` : undefined,
          [F.FSC]: e.esr?.abort ? `0x${e.esr.abort.fsc.toString(16)}` : undefined,
          [F.SEVERITY]: e.severity,
          [F.GVA]: r.msg.type === 'sea' && e.esr?.abort && !e.esr.abort.fnv ? hex(r.msg.gva) : undefined,
          [F.GPA]: hex(e.gpa),
        };
        // A dry-run policy's own decision: what an operator trying the policy reads.
        const wouldHave = d?.dryRun ? describeWouldHave(d.dryRun) : undefined;
        const message = `memory error (${e.kind}) on VM ${e.vm.id} vCPU ${e.vcpu ?? '-'}${e.gpa === null ? '' : ` GPA ${hex(e.gpa)}`}: ${what}${d ? ` [rule ${d.rule}]` : ''}${wouldHave ? `; dry run, would have: ${wouldHave}` : ''}`;
        // A replay has no decision (the plugin's fallback answered it): no rule, no policy version.
        if (d === null) {
          log.log({
            message,
            priority: priorityOf(r),
            messageId: MessageId.FALLBACK_EVENTS_REPORTED,
            perEvent: true,
            fields: { ...event, [F.ACTION]: 'fallback', [F.OUTCOME]: 'fallback', [F.SESSION]: r.session.id },
          });
          continue;
        }
        log.log({
          message,
          priority: priorityOf(r),
          messageId: MessageId.MEMORY_ERROR,
          perEvent: true,
          fields: {
            ...event,
            [F.ACTION]: d.action,
            [F.RULE]: d.rule,
            [F.POLICY_VERSION]: d.policyVersion,
            [F.OUTCOME]: d.dryRun ? 'dry_run' : 'verdict_sent',
            [F.WOULD_HAVE]: wouldHave,
            [F.SESSION]: r.session.id,
          },
        });
        const down = d.downgrade ?? r.verdictDowngrade;
        if (down && log.admitEvent(r.event.vm.id)) {
          log.log({
            message: `injection downgraded on VM ${e.vm.id}: ${down.from} → ${down.to} (${down.detail})`,
            priority: Priority.WARNING,
            messageId: MessageId.INJECTION_DOWNGRADED,
            perEvent: true,
            fields: { [F.VM]: e.vm.id, [F.RULE]: d.rule, [F.REASON]: down.reason, [F.OUTCOME]: down.to },
          });
        }
      }
    },
    protocolError(reason, detail, s) {
      log.notice(`protocol_error:${reason}`, {
        message: `plugin protocol error (${reason})${s ? ` from VM ${s.vm.id}` : ''}: ${detail}; session closed`,
        priority: Priority.WARNING,
        messageId: MessageId.PROTOCOL_ERROR,
        fields: { [F.REASON]: reason, [F.VM]: s?.vm.id, [F.SESSION]: s?.id },
      });
    },
    sessionRejected(reason, detail, peer) {
      log.notice(`rejected:${reason}`, {
        message: `plugin connection refused (${reason}): ${detail}`,
        priority: Priority.WARNING,
        messageId: MessageId.PROTOCOL_ERROR,
        fields: {
          [F.REASON]: reason,
          [F.OUTCOME]: 'rejected',
          [F.PEER_PID]: peer?.pid,
          [F.PEER_UID]: peer?.uid,
        },
      });
    },
    sessionClosed(s, outcome, detail) {
      // A plugin may open and close sessions in a loop: limited like a notice, with room for a
      // fleet's sessions ending together at a stop.
      log.notice(
        'session_closed',
        {
          message: `plugin session ${s.id} for VM ${s.vm.id} closed (${outcome})${detail ? `: ${detail}` : ''}`,
          priority: Priority.INFO,
          messageId: MessageId.SESSION_CLOSED,
          fields: { [F.VM]: s.vm.id, [F.SESSION]: s.id, [F.OUTCOME]: outcome },
        },
        SESSION_ENDS_PER_MINUTE,
      );
    },
  };
}
