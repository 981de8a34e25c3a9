/**
 * vCPU attachment in the C plugin (vmm/c, docs/protocol.md §9a), against the real daemon with
 * stand-in vCPUs (sealed memfds shaped like kvm_run, `attach.allowStandIns`): the fixture
 * test/protocol/fixtures/attach.c writes an exit into the page that the event's copy contradicts,
 * so a verdict taken from the page shows in `seawall_kernel_mismatches_total`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { controlRequest } from '../../control/index.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { exitOf, killOwned, runFile as run, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { cBuildDir, fixtureBinary } from './c-fixtures.js';

cBuildDir(); // made, and removed after the file's tests, at the top level: shared by the tests

/** A daemon whose attach socket is the default one beside its plugin socket; `attach` is its config. */
async function daemonWith(attach: string): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-ca-'));
  writeFileSync(join(dir, 'config.yaml'), `attach:\n${attach}`);
  return startDaemon({ dir, args: ['--config', join(dir, 'config.yaml')] });
}

/** Kernel mismatches counted by field, from the daemon's metrics. */
async function mismatches(d: RunningDaemon): Promise<Record<string, number>> {
  const text = await scrape(d.metricsUrl as string);
  const out: Record<string, number> = {};
  for (const field of ['esr', 'gpa'])
    out[field] = metricSum(text, 'seawall_kernel_mismatches_total', (l) => l.includes(`field="${field}"`));
  return out;
}

test('an attached vCPU is decided from its page, and attached again after the daemon restarts', async (t) => {
  const bin = await fixtureBinary(t, 'attach');
  if (!bin) return;
  const first = await daemonWith('  allowStandIns: true\n');
  const daemons = [first];
  const proc = spawnOwned(bin, [first.socket, 'restart'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    await killOwned(proc, 'the attach fixture');
    for (const d of daemons) await d.kill();
    removeDir(first.dir);
  });
  const lines: string[] = [];
  let notify: (() => void) | null = null;
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    notify?.();
  });
  const line = (text: string) =>
    within(
      `the fixture's line "${text}"`,
      new Promise<void>((resolve) => {
        notify = () => {
          if (lines.includes(text)) resolve();
        };
        notify();
      }),
      { state: () => `lines so far: ${JSON.stringify(lines)}` },
    );

  await line('restart?');
  assert.deepEqual(lines, ['connect r=0', 'attach r=0 attached=1', 'sea source=daemon', 'restart?']);
  // The verdict followed the page: the plugin's ESR and GPA were counted as lies, and the
  // poisoned page on record is the kernel's.
  assert.deepEqual(await mismatches(first), { esr: 1, gpa: 1 });
  const poison = await controlRequest(first.controlSocket, 'poison', { vm: 'c-attach' });
  assert.deepEqual(
    (poison as { gpa: string }[]).map((p) => p.gpa),
    ['0x0000000000007000'],
  );

  // A new daemon on the same sockets: the plugin reconnects and attaches vCPU 0 by itself.
  await first.stop();
  const second = await startDaemon({ dir: first.dir, args: ['--config', join(first.dir, 'config.yaml')] });
  daemons.push(second);
  proc.stdin!.write('go\n');
  const exit = await within('the attach fixture to exit', exitOf(proc));
  assert.deepEqual(lines.slice(4), [
    'reconnected=1 attached=1 failed=0 refused=0',
    'sea source=daemon',
    'detach r=0 attached=0',
  ]);
  assert.equal(exit.code, 0);
  assert.deepEqual(await mismatches(second), { esr: 1, gpa: 1 }, 'the new session read the page too');
});

test('no attach socket: the attach fails and is counted, and the exits are decided as before', async (t) => {
  const bin = await fixtureBinary(t, 'attach');
  if (!bin) return;
  const d = await daemonWith('  enabled: false\n');
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const { stdout } = await run(bin, [d.socket, 'missing'], { timeout: 30_000 });
  assert.deepEqual(stdout.trim().split('\n'), [
    'pre r=ENOTCONN', // registered: attached after the next WELCOME
    'connect r=0 attached=0 failed=1', // that WELCOME's attach found no socket; the session is up
    'attach r=ENOENT attached=0 failed=2',
    'sea source=daemon',
  ]);
  assert.deepEqual(await mismatches(d), { esr: 0, gpa: 0 });
});
