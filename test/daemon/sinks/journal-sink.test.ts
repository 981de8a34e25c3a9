/**
 * The journal sink's entries that a plugin can cause at will are limited: sessions opened and
 * closed in a loop give at most SESSION_ENDS_PER_MINUTE SESSION_CLOSED entries a minute, and one
 * entry counts the rest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonLog } from '../../../daemon/log.js';
import { journalSink, SESSION_ENDS_PER_MINUTE } from '../../../daemon/sinks/journal-sink.js';
import type { SessionInfo } from '../../../events/index.js';
import { createJournalLogger, MessageId } from '../../../systemd/index.js';

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
