/**
 * How the write-ahead bound's holds reach the journal (daemon/store-reporting.ts `onHold`): the
 * VMs newly held are named in one warning line with REASON=store_hold (and VM= when one), the
 * names past eight counted; a hold of nobody new says nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DaemonLog } from '../../daemon/log.js';
import { storeReporting } from '../../daemon/store-reporting.js';
import { JournalField as F, type JournalEntry, Priority } from '../../systemd/index.js';

test('the VMs the write-ahead bound holds are named in a warning, the rest counted', () => {
  const entries: [string, JournalEntry][] = [];
  const log = { notice: (key: string, e: JournalEntry) => entries.push([key, e]) } as unknown as DaemonLog;
  const report = storeReporting(null, log);
  report.onHold([]);
  assert.equal(entries.length, 0, 'nobody newly held: nothing said');
  report.onHold(['vm-flood']);
  const [key, one] = entries[0] as [string, JournalEntry];
  assert.equal(key, 'store:hold', 'rate-limited with the other notices');
  assert.match(one.message, /^not reading VM vm-flood until the event store catches up/);
  assert.equal(one.priority, Priority.WARNING);
  assert.deepEqual(one.fields, { [F.REASON]: 'store_hold', [F.VM]: 'vm-flood' });
  report.onHold(Array.from({ length: 10 }, (_, i) => `vm-${i}`));
  const many = (entries[1] as [string, JournalEntry])[1];
  assert.match(
    many.message,
    /^not reading VMs vm-0, vm-1, vm-2, vm-3, vm-4, vm-5, vm-6, vm-7 and 2 more until/,
  );
  assert.deepEqual(many.fields, { [F.REASON]: 'store_hold' });
});
