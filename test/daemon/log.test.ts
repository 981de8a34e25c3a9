/**
 * The daemon's log: per-event entries past the rate are counted, and the count is said — every
 * ten seconds, and at close, so that the last seconds before a stop are not lost with it. The rate
 * follows a monotonic clock: a wall clock stepped back changes nothing.
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

test('a wall clock stepped back does not silence per-event entries', (t) => {
  const lines: string[] = [];
  const logger = createJournalLogger({
    identifier: 'seawall-test',
    mode: 'stderr',
    output: { write: (chunk: string) => lines.push(chunk) },
  });
  const realNow = Date.now;
  let wall = realNow();
  Date.now = () => wall;
  t.after(() => {
    Date.now = realNow;
  });
  const log = createDaemonLog({ logger, eventsPerSecond: 1000 });
  t.after(() => log.close());
  assert.equal(log.admitEvent(), true);
  wall -= 3_600_000;
  assert.equal(log.admitEvent(), true, 'admitted right after the clock was stepped back an hour');
  wall += 1000;
  let admitted = 0;
  for (let i = 0; i < 10; i++) if (log.admitEvent()) admitted++;
  assert.equal(admitted, 10);
});
