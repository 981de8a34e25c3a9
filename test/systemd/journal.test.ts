import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { isSystemdError } from '../../systemd/errors.js';
import type { JournalEntry } from '../../systemd/journal.js';
import { createJournalLogger, Priority, STDERR_BACKLOG_BYTES } from '../../systemd/journal.js';
import { JournalField } from '../../systemd/journal-fields.js';
import { MessageId } from '../../systemd/message-ids.js';
import { runFile as run } from '../helpers/processes.js';
import { WAIT_MS } from '../helpers/wait.js';
import { journaldRequirements, startJournald } from './journald-fixture.js';
import { requireOrSkip } from './tools.js';

const CHILD = new URL('./children/journal-child.ts', import.meta.url).pathname;

async function logInChild(options: object, entries: JournalEntry[]) {
  const { stdout, stderr } = await run(process.execPath, [
    '--import',
    'tsx',
    CHILD,
    JSON.stringify(options),
    // bigint values travel as "<digits>n" and are revived by the child.
    JSON.stringify(entries, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)),
  ]);
  return { ...(JSON.parse(stdout) as { target: string; errors: string[] }), stderr };
}

function decisionEntry(id: string): JournalEntry {
  return {
    message: `decision for vm-${id}: inject`,
    priority: Priority.WARNING,
    messageId: MessageId.MEMORY_ERROR,
    fields: {
      [JournalField.VM]: `vm-${id}`,
      [JournalField.VCPU]: 3,
      [JournalField.SEQ]: 18446744073709551615n,
      [JournalField.ESR]: '0x92000410',
      [JournalField.ACTION]: 'inject',
      [JournalField.RULE]: 'gold tier\nsecond line',
      [JournalField.GVA]: undefined,
      [JournalField.OUTCOME]: true,
    },
  };
}

test('entries reach a real journald with MESSAGE_ID and SEAWALL_* fields', async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  const id = randomUUID();
  const identifier = `seawall-test-${id}`;

  const result = await logInChild({ identifier }, [decisionEntry(id)]);
  assert.deepEqual(result, { target: 'journal', errors: [], stderr: '' });

  const [entry] = await journald.waitForEntries({ SYSLOG_IDENTIFIER: identifier });
  assert.ok(entry);
  assert.equal(entry.MESSAGE, `decision for vm-${id}: inject`);
  assert.equal(entry.PRIORITY, '4');
  assert.equal(entry.MESSAGE_ID, MessageId.MEMORY_ERROR);
  assert.equal(entry.SEAWALL_VM, `vm-${id}`);
  assert.equal(entry.SEAWALL_VCPU, '3');
  assert.equal(entry.SEAWALL_SEQ, '18446744073709551615');
  assert.equal(entry.SEAWALL_ESR, '0x92000410');
  assert.equal(entry.SEAWALL_ACTION, 'inject');
  assert.equal(entry.SEAWALL_RULE, 'gold tier\nsecond line');
  assert.equal(entry.SEAWALL_OUTCOME, 'true');
  assert.equal(entry.SEAWALL_GVA, undefined, 'undefined fields are left out');
});

test('without journald the logger writes one stderr line per entry with the same fields', async () => {
  const id = 'abc';
  const result = await logInChild({ identifier: 'seawall', socketPath: '/nonexistent/journal/socket' }, [
    decisionEntry(id),
    { message: 'started', priority: Priority.INFO },
  ]);
  assert.equal(result.target, 'stderr');
  assert.deepEqual(result.errors, []);
  assert.equal(
    result.stderr,
    `decision for vm-abc: inject PRIORITY=4 MESSAGE_ID=${MessageId.MEMORY_ERROR} SEAWALL_VM=vm-abc ` +
      'SEAWALL_VCPU=3 SEAWALL_SEQ=18446744073709551615 SEAWALL_ESR=0x92000410 SEAWALL_ACTION=inject ' +
      'SEAWALL_RULE="gold tier\\nsecond line" SEAWALL_OUTCOME=true\n' +
      'started PRIORITY=6\n',
  );
});

test('under systemd without libsystemd the logger reports once and uses stderr', async () => {
  const result = await logInChild(
    { identifier: 'seawall', library: 'libsystemd-absent.so.0', env: { JOURNAL_STREAM: '1:2' } },
    [{ message: 'one', priority: Priority.INFO }],
  );
  assert.deepEqual(result, {
    target: 'stderr',
    errors: ['SEAWALL_SYSTEMD_UNAVAILABLE'],
    stderr: 'one PRIORITY=6\n',
  });
});

test('JOURNAL_STREAM without journald’s socket: entries go to stderr, the stream, never into the void', async (t) => {
  // sd_journal_sendv(3) returns success when the socket is absent: choosing it for the stream alone
  // (a service whose root lacks /run/systemd/journal) lost every entry.
  const dir = mkdtempSync(join(tmpdir(), 'seawall-stream-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'stderr'), 'w');
  t.after(() => closeSync(fd));
  const st = fstatSync(fd, { bigint: true });
  const logWith = (mode: string) => {
    const options = {
      identifier: 'seawall',
      mode,
      socketPath: '/nonexistent/journal/socket',
      env: { JOURNAL_STREAM: `${st.dev}:${st.ino}` },
    };
    const entries = [{ message: `via ${mode}`, priority: Priority.INFO }];
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', CHILD, JSON.stringify(options), JSON.stringify(entries)],
      { stdio: ['ignore', 'pipe', fd], encoding: 'utf8', timeout: WAIT_MS },
    );
    return JSON.parse(res.stdout) as { target: string; errors: string[] };
  };
  assert.deepEqual(logWith('auto'), { target: 'stderr', errors: [] });
  // Asked for journald by name, it says it is not there.
  assert.deepEqual(logWith('journal'), { target: 'stderr', errors: ['SEAWALL_SYSTEMD_UNAVAILABLE'] });
  assert.equal(readFileSync(join(dir, 'stderr'), 'utf8'), 'via auto PRIORITY=6\nvia journal PRIORITY=6\n');
});

test('malformed entries are rejected with typed errors', () => {
  const lines: string[] = [];
  const logger = createJournalLogger({
    identifier: 'seawall',
    mode: 'stderr',
    output: { write: (s) => lines.push(s) },
  });
  assert.throws(
    () => logger.log({ message: 'x', priority: 9 as 7 }),
    (err) => isSystemdError(err, 'SEAWALL_SYSTEMD_ENTRY_INVALID'),
  );
  assert.throws(
    () => logger.log({ message: 'x', priority: 6, messageId: 'not-hex' }),
    (err) => isSystemdError(err, 'SEAWALL_SYSTEMD_ENTRY_INVALID'),
  );
  for (const field of ['seawall_vm', '_PID', 'PRIORITY', 'A-B']) {
    assert.throws(
      () => logger.log({ message: 'x', priority: 6, fields: { [field]: 1 } }),
      (err) => isSystemdError(err, 'SEAWALL_SYSTEMD_FIELD_INVALID'),
      field,
    );
  }
  assert.deepEqual(lines, []);
});

test('stderr lines waiting for a reader that does not read are bounded; the next one read says how many were dropped', async () => {
  // A reader that takes nothing until released: what waits is the stream's writableLength.
  const held: (() => void)[] = [];
  const written: string[] = [];
  const output = new Writable({
    decodeStrings: false,
    write(chunk: string, _enc, done) {
      written.push(chunk);
      held.push(done);
    },
  });
  const logger = createJournalLogger({ identifier: 'seawall', mode: 'stderr', output });
  const line = 'x'.repeat(1000);
  const n = 3000;
  for (let i = 0; i < n; i++) logger.log({ message: line, priority: 6 });
  assert.ok(
    output.writableLength < STDERR_BACKLOG_BYTES + 2000,
    `${output.writableLength} bytes wait, over the bound`,
  );
  const kept = Math.ceil(STDERR_BACKLOG_BYTES / (line.length + ' PRIORITY=6\n'.length));
  // The reader catches up: everything waiting is taken, and the next line is preceded by the count.
  const release = async () => {
    const deadline = performance.now() + WAIT_MS;
    while (output.writableLength > 0) {
      assert.ok(performance.now() < deadline, 'the stream took what was released');
      const done = held.shift();
      if (done) done();
      else await new Promise((r) => setImmediate(r));
    }
  };
  await release();
  logger.log({ message: 'after', priority: 6 });
  await release();
  const notice = written.find((w) => w.includes('stderr_backlog'));
  assert.ok(notice, 'a line says lines were dropped');
  assert.match(notice, new RegExp(`^${n - kept} log lines dropped: stderr did not take them`));
  assert.match(notice, new RegExp(`SEAWALL_SUPPRESSED=${n - kept}`));
  assert.equal(written.at(-1), 'after PRIORITY=6\n');
  assert.equal(written.filter((w) => w.startsWith('x')).length, kept);
});
