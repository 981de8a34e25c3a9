/** `seawall simulate` against `seawall daemon`, both as the operator runs them. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { VmView } from '../../control/index.js';
import {
  CLI,
  metricSum,
  PATIENT_DEADLINE_MS,
  type RunningDaemon,
  removeDir,
  scrape,
  startDaemon,
} from '../helpers/daemon.js';
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

/** Simulate with two VM processes that run long, once both VMs are sending; its output collected. */
async function longFleet(d: RunningDaemon, prefix: string, spawnIt: (args: string[]) => ChildProcess) {
  const sim = spawnIt(
    [CLI, 'simulate', '--socket', d.socket, '--vms', '2', '--vcpus', '1'].concat([
      '--events',
      '100000',
      '--rate',
      '20',
      '--vm-prefix',
      prefix,
    ]),
  );
  const out = { text: '' };
  sim.stdout?.setEncoding('utf8').on('data', (s: string) => (out.text += s));
  sim.stderr?.setEncoding('utf8').on('data', (s: string) => (out.text += s));
  await until(
    `both VMs of ${prefix} to report events`,
    async () => {
      const vms = await cliJson<VmView[]>(d.controlSocket, ['vms']);
      return vms.filter((v) => v.vm.startsWith(`${prefix}-`) && v.connected && v.events > 0).length === 2;
    },
    { everyMs: 100, state: () => out.text },
  );
  const children = childrenOf(sim.pid as number);
  assert.equal(children.length, 2, 'one process per VM');
  return { sim, out, children };
}

const gone = (pid: number) => {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

test('SIGTERM ends simulate and its VM processes with it, exit 143', async (t) => {
  const d = await startDaemon({ metrics: false });
  let sim: ChildProcess | undefined;
  t.after(async () => {
    if (sim) await killOwned(sim);
    await d.kill();
    removeDir(d.dir);
  });
  const fleet = await longFleet(d, 'term', (args) => spawnOwned(process.execPath, args));
  sim = fleet.sim;
  sim.kill('SIGTERM');
  const exit = await within('simulate to exit after SIGTERM', exitOf(sim), { state: () => fleet.out.text });
  assert.deepEqual(exit, { code: 143, signal: null }, fleet.out.text);
  assert.match(fleet.out.text, /stopped by SIGTERM: every VM process was ended/);
  // simulate waited for them: they are gone (reaped) by the time it exits.
  for (const pid of fleet.children) assert.ok(gone(pid), `VM process ${pid} is gone`);
});

test('a VM process ends when simulate is SIGKILLed (its IPC channel closes)', async (t) => {
  const d = await startDaemon({ metrics: false });
  let sim: ChildProcess | undefined;
  t.after(async () => {
    // In a group of its own and not owned: an owned leader's exit kills its group, the VM
    // processes under test among it.
    if (sim?.pid !== undefined)
      try {
        process.kill(-sim.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is empty.
      }
    await d.kill();
    removeDir(d.dir);
  });
  const fleet = await longFleet(d, 'orphan', (args) =>
    spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  sim = fleet.sim;
  sim.kill('SIGKILL');
  await within('simulate to die', exitOf(sim));
  await until('its VM processes to end', () => fleet.children.every(gone), {
    state: () => fleet.children.map((p) => `${p} gone: ${gone(p)}`).join(', '),
  });
});
