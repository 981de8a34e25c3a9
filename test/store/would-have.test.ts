/**
 * A dry-run policy's own decision is stored with its event, through the write-ahead file and the
 * writer thread into SQLite: a query gives it as `wouldHave` (its code and its parameters in
 * words), apart from the event's downgrades; the row's `downgrade` list keeps it as a `dry_run`
 * entry for a reader of the file.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventRecord } from '../../events/index.js';
import { MERGED, policyFrom } from '../policies/fixtures.js';
import { record, session, threadedStore } from './records.js';

const T0 = 1_700_000_000_000;

const DRY_RUN = `version: 1
name: dry
dryRun: true
rules:
  - name: uc-kill
    match: { severity: uc }
    action: { type: kill, grace: 5s }
default:
  action: { type: inject, abort: instruction, set: uc }
`;

const UC_ESR = 0x92001410n;

test("a dry-run decision is stored with its event and read back as the event's wouldHave", (t) => {
  const { store, ahead } = threadedStore(t, { bootId: 'boot-1' });
  const policy = policyFrom(DRY_RUN);
  const decided = (r: EventRecord): EventRecord => ({ ...r, decision: policy.decide(r.event, MERGED) });
  const s = session('vm-dry');
  const batch = [1, 2, 3].map((seq) => decided(record({ session: s, seq, timeMs: T0 + seq, esr: UC_ESR })));
  const other = decided(record({ session: s, seq: 4, timeMs: T0 + 4 }));
  // The built-in answer itself changed by the daemon (a host without INJECT_EXT_DABT).
  other.verdictDowngrade = { from: 'dabt', to: 'resume', reason: 'no_inject_cap', detail: 'no cap' };
  const live = record({ session: s, seq: 5, timeMs: T0 + 5 });
  ahead.record(batch);
  ahead.record([other, live]);
  ahead.flush();

  const events = store.queries.events({ vm: 'vm-dry' });
  assert.deepEqual(
    events.map((e) => [e.seq, e.action, e.rule, e.wouldHave]),
    [
      [1, 'inject', 'uc-kill', { code: 'kill', detail: 'kill (grace 5000 ms)' }],
      [2, 'inject', 'uc-kill', { code: 'kill', detail: 'kill (grace 5000 ms)' }],
      [3, 'inject', 'uc-kill', { code: 'kill', detail: 'kill (grace 5000 ms)' }],
      [
        4,
        'inject',
        'default',
        {
          code: 'dabt',
          detail:
            'inject data abort (ESR built by KVM) via kvm, downgraded from iabt_esr (merged_abi_no_iabt)',
        },
      ],
      [5, 'inject', 'inject-data', null],
    ],
  );
  assert.deepEqual(events[0]?.downgrades, [], 'a dry run is not a downgrade');
  assert.deepEqual(events[3]?.downgrades, [
    { by: 'daemon', from: 'dabt', to: 'resume', reason: 'no_inject_cap', detail: 'no cap' },
  ]);

  ahead.close();
  const raw = store.db.prepare('SELECT downgrade FROM events WHERE seq = 1').get() as { downgrade: string };
  assert.deepEqual(JSON.parse(raw.downgrade), [
    { by: 'dry_run', from: 'kill', to: 'dabt', reason: 'dry_run', detail: 'kill (grace 5000 ms)' },
  ]);
});
