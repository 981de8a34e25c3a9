/** `seawall simulate` against `seawall daemon`, both as the operator runs them. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { VmView } from '../../control/index.js';
import { CLI, metricSum, PATIENT_DEADLINE_MS, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { cliJson, runCli as run } from './e2e/run-cli.js';

test('simulate --vms 8 --vcpus 4 --events 10000 exits 0 with every event answered', async (t) => {
  const d = await startDaemon();
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const r = await run([
    'simulate',
    '--socket',
    d.socket,
    '--vms',
    '8',
    '--vcpus',
    '4',
    '--events',
    '10000',
    '--deadline',
    `${PATIENT_DEADLINE_MS}ms`,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.sent, 10_000);
  assert.equal(s.answered, 10_000);
  assert.equal(s.fallbacks, 0);
  assert.equal(s.verdicts.inject, 10_000);
  assert.ok(s.latencyUs.p50 > 0 && s.latencyUs.p99 >= s.latencyUs.p50);
  const text = await scrape(d.metricsUrl as string);
  assert.equal(metricSum(text, 'seawall_memory_errors_total'), 10_000);
  assert.equal(await d.stop(), 0);
});

test('simulate against no daemon fails with a clear message', async () => {
  const r = await run(['simulate', '--socket', '/nonexistent/plugin.sock', '--events', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot drive the daemon at \/nonexistent\/plugin.sock/);
});

test('simulate usage errors exit 2', async () => {
  assert.equal((await run(['simulate'])).code, 2);
  assert.equal((await run(['simulate', '--events', '1', '--mix', 'sea=x'])).code, 2);
});

/** The pids of `pid`'s children (its fleet processes), from /proc. */
function childrenOf(pid: number): number[] {
  const path = `/proc/${pid}/task/${pid}/children`;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

test('a VM process killed by hand fails the run: its events are said to be uncounted, not blamed on the daemon', async (t) => {
  const d = await startDaemon({ metrics: false });
  const sim = spawnOwned(process.execPath, [
    CLI,
    'simulate',
    '--socket',
    d.socket,
    '--vms',
    '1',
    '--vcpus',
    '1',
    '--events',
    '1000',
    '--rate',
    '10',
    '--vm-prefix',
    'byhand',
    '--json',
  ]);
  t.after(async () => {
    await killOwned(sim);
    await d.kill();
    removeDir(d.dir);
  });
  let stdout = '';
  let stderr = '';
  sim.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  sim.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  // Its one VM is connected and sending: the process is running its share.
  await until(
    'byhand-0 to report events',
    async () => {
      const vms = await cliJson<VmView[]>(d.controlSocket, ['vms']);
      return vms.some((v) => v.vm === 'byhand-0' && v.connected && v.events > 0);
    },
    { everyMs: 100 },
  );
  const [child] = childrenOf(sim.pid as number);
  assert.ok(child, 'simulate has its fleet process');
  process.kill(child, 'SIGKILL');
  const exit = await within('simulate to exit', exitOf(sim), { state: () => stdout + stderr });
  assert.equal(exit.code, 1, stderr);
  const s = JSON.parse(stdout);
  assert.deepEqual(s.unreported, [{ vm: 'byhand-0', events: 1000, ended: 'signal SIGKILL' }]);
  assert.deepEqual(s.sigkilled, [], 'the daemon killed nothing');
  assert.deepEqual(s.killed, []);
  assert.match(
    stderr,
    /VM byhand-0: its process ended \(signal SIGKILL\) without a report: its 1000 planned event\(s\) not counted/,
  );
});
