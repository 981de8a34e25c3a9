/**
 * The daemon's log: per-event entries past the rate are counted, and the count is said — every
 * ten seconds, and at close, so that the last seconds before a stop are not lost with it. The rate
 * follows a monotonic clock: a wall clock stepped back changes nothing. One VM takes at most its
 * share of the rate, and the report names the VMs whose entries were suppressed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonLog, VM_SHARE } from '../../daemon/log.js';
import { createJournalLogger } from '../../systemd/index.js';

/** A logger writing stderr lines into `lines`. */
function captured() {
  const lines: string[] = [];
  const logger = createJournalLogger({
    identifier: 'seawall-test',
    mode: 'stderr',
    output: { write: (chunk: string) => lines.push(chunk) },
  });
  return { lines, logger };
}

test('entries suppressed by the rate are reported at close', () => {
  const { lines, logger } = captured();
  const log = createDaemonLog({ logger, eventsPerSecond: 5 });
  let admitted = 0;
  // A VM each: the host's rate, not one VM's share of it, is what suppresses them.
  for (let i = 0; i < 100; i++) if (log.admitEvent(`vm${i}`)) admitted++;
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
  const { logger } = captured();
  const realNow = Date.now;
  let wall = realNow();
  Date.now = () => wall;
  t.after(() => {
    Date.now = realNow;
  });
  const log = createDaemonLog({ logger, eventsPerSecond: 1000 });
  t.after(() => log.close());
  assert.equal(log.admitEvent('a'), true);
  wall -= 3_600_000;
  assert.equal(log.admitEvent('a'), true, 'admitted right after the clock was stepped back an hour');
  wall += 1000;
  let admitted = 0;
  for (let i = 0; i < 10; i++) if (log.admitEvent('a')) admitted++;
  assert.equal(admitted, 10);
});

test("one VM's flood takes at most its share: another VM's entries are still written, and the VMs are named", () => {
  const { lines, logger } = captured();
  const log = createDaemonLog({ logger, eventsPerSecond: 1000 });
  // Within a millisecond or so: refills add at most a few tokens.
  let noisy = 0;
  for (let i = 0; i < 2000; i++) if (log.admitEvent('noisy')) noisy++;
  let quiet = 0;
  for (let i = 0; i < 20; i++) if (log.admitEvent('quiet')) quiet++;
  assert.ok(noisy <= 1000 / VM_SHARE + 20, `the flooding VM took ${noisy} of the host's 1000`);
  assert.equal(quiet, 20, "the other VM's entries are admitted");
  log.close();
  const report = lines.find((l) => l.includes('not logged individually'));
  assert.ok(report, lines.join(''));
  assert.match(report, new RegExp(`^${2000 - noisy} memory-error entries not logged individually`));
  assert.match(report, new RegExp(`most from VMs noisy \\(${2000 - noisy}\\)`));
});
