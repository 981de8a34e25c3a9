/**
 * The state directory removed under a running daemon (an operator's `rm -rf`, a tmpfs remounted):
 * the daemon makes it again as at start (0700, its lock taken again), reopens the store there, and
 * stores what it answers from then on; nothing answered is counted lost. The rows of the file being
 * appended at that moment are the write-ahead layer's tests (test/store/write-ahead.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { STORE_FILE } from '../../../store/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { until } from '../../helpers/wait.js';
import { cliJson, runCli } from './run-cli.js';

interface Status {
  store: {
    path: string;
    events: number;
    health: { healthy: boolean; droppedRows: number; heldRows: number };
  } | null;
}

async function simulate(d: RunningDaemon, events: number, prefix: string): Promise<void> {
  const r = await runCli([
    'simulate',
    '--socket',
    d.socket,
    '--vms',
    '3',
    '--events',
    String(events),
    '--in-process',
    '--vm-prefix',
    prefix,
  ]);
  assert.equal(r.code, 0, `simulate exited ${r.code}:\n${r.stderr}${r.stdout}`);
}

test('the state directory removed under a running daemon is made again, and what it answers next is stored', async (t) => {
  let d: RunningDaemon | null = null;
  t.after(async () => {
    await d?.kill();
    if (d) removeDir(d.dir);
  });
  d = await startDaemon({ metrics: false });
  const daemon = d;
  const status = () => cliJson<Status>(daemon.controlSocket, ['status']);
  await simulate(daemon, 200, 'before');
  await until('the first events stored', async () => (await status()).store?.events === 200, {
    everyMs: 100,
  });

  removeDir(daemon.stateDir);
  await simulate(daemon, 300, 'after');
  // The once-a-second check finds the store gone; the retry makes the directory and the store again.
  let last: Status | null = null;
  await until(
    'the store made again, healthy, with the events answered since',
    async () => {
      last = await status();
      const s = last.store;
      return s?.health.healthy && s.events >= 300 && s.health.heldRows === 0;
    },
    { state: () => JSON.stringify(last?.store), everyMs: 100 },
  );
  const store = (last as Status | null)?.store;
  assert.ok(store);
  assert.equal(store.path, join(daemon.stateDir, STORE_FILE));
  // The 200 of the first run went with the directory, unless some were still being appended.
  assert.ok(store.events <= 500, `${store.events} events`);
  assert.equal(store.health.droppedRows, 0, 'no answered event lost');
  assert.equal(statSync(daemon.stateDir).mode & 0o777, 0o700, 'made again as at start');
  assert.ok(existsSync(join(daemon.stateDir, `${STORE_FILE}.lock`)), 'its lock taken again');
  const r = await runCli(['events', '--control-socket', daemon.controlSocket, '--vm', 'after-0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).length > 0, 'the events of a VM of the second run are read back');
  assert.ok(
    daemon.output.some((l) => /event store recovered/.test(l)),
    'the recovery is logged',
  );
});
