/**
 * The daemon's log: per-event entries past the rate are counted, and the count is said — every
 * ten seconds, and at close, so that the last seconds before a stop are not lost with it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonLog } from '../../daemon/log.js';
import { createJournalLogger } from '../../systemd/index.js';

test('entries suppressed by the rate are reported at close', () => {
  const lines: string[] = [];
  const logger = createJournalLogger({
    identifier: 'seawall-test',
    mode: 'stderr',
    output: { write: (chunk: string) => lines.push(chunk) },
  });
  const log = createDaemonLog({ logger, eventsPerSecond: 5 });
  let admitted = 0;
  for (let i = 0; i < 100; i++) if (log.admitEvent()) admitted++;
  const suppressed = 100 - admitted;
  assert.ok(suppressed >= 90, `${suppressed} suppressed of 100 at 5/s`);
  log.close();
  const report = lines.filter((l) => l.includes('not logged individually'));
  assert.equal(report.length, 1, lines.join(''));
  assert.match(
    report[0] as string,
    new RegExp(`^${suppressed} memory-error entries not logged individually`),
  );
  assert.match(report[0] as string, /SEAWALL_REASON=log_rate_limit/);
});
