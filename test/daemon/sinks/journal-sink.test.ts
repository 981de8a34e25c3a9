/**
 * The journal sink's entries that a plugin can cause at will are limited: sessions opened and
 * closed in a loop give at most SESSION_ENDS_PER_MINUTE SESSION_CLOSED entries a minute, and one
 * entry counts the rest. An event decided by a dry-run policy says what its rule would have done.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonLog } from '../../../daemon/log.js';
import { journalSink, SESSION_ENDS_PER_MINUTE } from '../../../daemon/sinks/journal-sink.js';
import type { EventRecord, SessionInfo } from '../../../events/index.js';
import { createJournalLogger, MessageId } from '../../../systemd/index.js';
import { MERGED, policyFrom, T0 } from '../../policies/fixtures.js';
import { record, session } from '../../store/records.js';

function stderrLog(lines: string[]) {
  const logger = createJournalLogger({
    identifier: 'seawall-test',
    mode: 'stderr',
    output: { write: (chunk: string) => lines.push(chunk) },
  });
  return createDaemonLog({ logger, events: 'each' });
}

test('sessions closed in a loop are logged up to the per-minute limit, the rest counted', () => {
  const lines: string[] = [];
  const log = stderrLog(lines);
  const sink = journalSink(log);
  const closes = SESSION_ENDS_PER_MINUTE * 10;
  for (let i = 0; i < closes; i++)
    sink.sessionClosed?.({ id: BigInt(i), vm: { id: `churn-${i}` } } as SessionInfo, 'normal', null);
  log.close();
  const closed = lines.filter((l) => l.includes(`MESSAGE_ID=${MessageId.SESSION_CLOSED}`));
  assert.equal(closed.length, SESSION_ENDS_PER_MINUTE);
  const summary = lines.filter((l) => l.includes('SEAWALL_REASON=log_rate_limit'));
  assert.equal(summary.length, 1, lines.slice(-3).join(''));
  assert.match(summary[0] as string, new RegExp(`SEAWALL_SUPPRESSED=${closes - SESSION_ENDS_PER_MINUTE}\\b`));
  assert.match(summary[0] as string, /'session_closed'/);
});

const DRY_RUN = `version: 1
name: dry
dryRun: true
hooks: [evacuate]
rules:
  - name: uc-kill
    match: { severity: uc }
    action: { type: kill, grace: 5s }
  - name: evacuate
    match: { labels: { tier: gold } }
    action:
      type: migrate
      hook: evacuate
      scope: host
      meanwhile: { abort: data }
      onFailure: { type: kill, grace: 30s }
default:
  action: { type: inject, abort: instruction, set: uc }
`;

test("a dry-run policy's entry names what its rule would have done, with its parameters", () => {
  const lines: string[] = [];
  const log = stderrLog(lines);
  const sink = journalSink(log);
  const policy = policyFrom(DRY_RUN);
  const decided = (r: EventRecord): EventRecord => ({ ...r, decision: policy.decide(r.event, MERGED) });
  sink.afterReply?.([
    decided(record({ session: session('vm-uc'), seq: 1, timeMs: T0, esr: 0x92001410n })),
    decided(record({ session: session('vm-gold', 2n, { tier: 'gold' }), seq: 1, timeMs: T0 })),
    decided(record({ session: session('vm-other', 3n), seq: 1, timeMs: T0 })),
    record({ session: session('vm-live', 4n), seq: 1, timeMs: T0 }),
  ]);
  log.close();
  const entry = (vm: string) => {
    const found = lines.find((l) => l.includes(`SEAWALL_VM=${vm} `));
    assert.ok(found, lines.join(''));
    return found;
  };
  const uc = entry('vm-uc');
  assert.match(uc, /SEAWALL_ACTION=inject SEAWALL_RULE=uc-kill /);
  assert.match(uc, /SEAWALL_OUTCOME=dry_run SEAWALL_WOULD_HAVE="kill \(grace 5000 ms\)"/);
  assert.match(uc, /\[rule uc-kill\]; dry run, would have: kill \(grace 5000 ms\) PRIORITY=/);
  assert.match(
    entry('vm-gold'),
    /SEAWALL_WOULD_HAVE="evacuate the host via hook evacuate \(meanwhile inject data abort \(ESR built by KVM\) via kvm\), on failure kill \(grace 30000 ms\)"/,
  );
  // A merged-ABI host has no instruction abort: the would-be decision needed a downgrade.
  assert.match(
    entry('vm-other'),
    /SEAWALL_WOULD_HAVE="inject data abort \(ESR built by KVM\) via kvm, downgraded from iabt_esr \(merged_abi_no_iabt\)"/,
  );
  assert.doesNotMatch(
    entry('vm-live'),
    /WOULD_HAVE|would have/,
    'a policy not in dry-run has nothing to add',
  );
});
