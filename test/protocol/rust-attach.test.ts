/**
 * The Rust crate's vCPU attachment (vmm/rust, Plugin::attach_vcpu) against the daemon as it
 * ships, with stand-in vCPUs (sealed memfds shaped like kvm_run, `attach.allowStandIns`): the
 * crate's example examples/attach_driver.rs is driven line by line, its vCPU fd inherited as fd 3
 * while this test writes the exits into the page, as KVM would. The attach socket is the default
 * one beside the plugin socket, which the crate derives by itself. Daemon state is read from its
 * metrics, its control socket and /proc/<pid>/fd.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { controlRequest } from '../../control/index.js';
import { StandInVcpus } from '../../vmm/attach-client.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { spawnOwned } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';
import { cargoPath, Driver, RUST_DIR } from './conformance/drivers.js';

const run = promisify(execFile);

/** The kernel's page: SEA, FnV set, GPA 0x7000 valid. The plugin's copy claims another ESR and GPA. */
const PAGE_EXIT = {
  reason: 'arm-sea',
  flags: 1n,
  esr: (0x24n << 26n) | (1n << 25n) | (1n << 10n) | 0x10n,
  gva: 0n,
  gvaValid: false,
  gpa: 0x7000n,
  gpaValid: true,
} as const;
const CLAIM = 'sea 0 1 0x92000010 0x1234 0x9000';

/** Builds the crate's attach driver; null when cargo is missing (and this is not CI). */
async function buildDriver(t: TestContext): Promise<string | null> {
  const cargo = cargoPath(t);
  if (!cargo) return null;
  await run(cargo, ['build', '--offline', '--quiet', '--example', 'attach_driver'], {
    cwd: RUST_DIR,
    timeout: 170_000,
  });
  return join(RUST_DIR, 'target/debug/examples/attach_driver');
}

interface Setup {
  dir: string;
  /** The running daemon: a test that restarts it puts the new one here, for the after-hook. */
  daemon: RunningDaemon;
  driver: Driver;
  driverPid: number;
  vcpus: StandInVcpus;
}

/**
 * A daemon started with `config` (YAML) in a fresh directory, and the attach driver (with `args`)
 * with `count` stand-in vCPUs as its fds 3, 4, …; everything is stopped and removed after the
 * test. Null without cargo.
 */
async function setUp(
  t: TestContext,
  config: string,
  metrics: boolean,
  count = 1,
  args: string[] = [],
): Promise<Setup | null> {
  const bin = await buildDriver(t);
  if (!bin) return null;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-rattach-'));
  const vcpus = new StandInVcpus(count);
  let s: Setup | null = null;
  t.after(async () => {
    await s?.driver.stop();
    await s?.daemon.stop();
    vcpus.close();
    removeDir(dir);
  });
  writeFileSync(join(dir, 'config.yaml'), config);
  const daemon = await startDaemon({ dir, args: ['--config', join(dir, 'config.yaml')], metrics });
  const proc = spawnOwned(bin, args, { stdio: ['pipe', 'pipe', 'pipe', ...vcpus.fds] });
  s = { dir, daemon, driver: new Driver(proc), driverPid: proc.pid as number, vcpus };
  return s;
}

async function mismatches(d: RunningDaemon, field: string): Promise<number> {
  const text = await scrape(d.metricsUrl as string);
  return metricSum(text, 'seawall_kernel_mismatches_total', (l) => l.includes(`field="${field}"`));
}

/** Sockets the process `pid` holds open (node makes its stdio pipes of socket pairs). */
function socketsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
      return false; // closed while listing
    }
  }).length;
}

test('the Rust crate attaches its vCPU, again by itself after a daemon restart, and does without an attach socket', async (t) => {
  const setup = await setUp(t, 'attach:\n  allowStandIns: true\n', true);
  if (!setup) return;
  const { dir, driver: d, vcpus } = setup;
  const standIns = join(dir, 'config.yaml');
  const noAttach = join(dir, 'no-attach.yaml');
  writeFileSync(noAttach, 'attach:\n  enabled: false\n');
  let daemon = setup.daemon;
  const restart = async (config: string) => {
    await daemon.stop();
    daemon = await startDaemon({ dir, args: ['--config', config] });
    setup.daemon = daemon;
  };
  const stdio = socketsOf(setup.driverPid);

  // (1) Attached in the session, at once.
  const first = await d.send(`connect ${daemon.socket} rust-attach 1`);
  assert.match(first, /^welcome \d+$/);
  assert.equal(await d.send('attach 0 3'), 'reply ok');
  assert.equal(await d.send('stats'), 'stats 1 0 0 1 1');

  // (2) The event is decided on the kernel's page, and the plugin's differing copy is counted.
  vcpus.write(0, PAGE_EXIT);
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.equal(await mismatches(daemon, 'esr'), 1);
  assert.equal(await mismatches(daemon, 'gpa'), 1);
  const poison = await controlRequest(daemon.controlSocket, 'poison', { vm: 'rust-attach' });
  assert.deepEqual(
    (poison as { gpa: string }[]).map((p) => p.gpa),
    ['0x0000000000007000'],
  );

  // (3) The daemon restarts: the reconnect attaches the vCPU to the new session by itself.
  await restart(standIns);
  assert.match(await d.send('poll 0'), /^error /, 'the GOODBYE SHUTDOWN ends the session');
  assert.equal(await d.send('stats'), 'stats 1 0 0 0 0');
  assert.equal(socketsOf(setup.driverPid), stdio, 'the attach connection went with the session');
  const second = await d.send(`connect ${daemon.socket} rust-attach 1`);
  assert.match(second, /^welcome \d+$/);
  assert.equal(await d.send('stats'), 'stats 2 0 0 1 1');
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.equal(await mismatches(daemon, 'esr'), 1, 'the new session reads the page too');
  assert.equal(await d.send('close'), 'ok');
  assert.equal(socketsOf(setup.driverPid), stdio, 'close closes the attach connection too');

  // (4) close forgot the vCPU: the next session attaches nothing until it is registered again. A
  // daemon without an attach socket: counted, and the events flow as before.
  await restart(noAttach);
  assert.match(await d.send(`connect ${daemon.socket} rust-attach 1`), /^welcome \d+$/);
  assert.equal(await d.send('stats'), 'stats 2 0 0 0 1');
  assert.match(await d.send('attach 0 3'), /^reply failed (NotFound|ConnectionRefused)$/);
  assert.equal(await d.send('stats'), 'stats 2 0 1 0 1');
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
});

test('after the daemon closed an idle attach connection, the next attach goes on a fresh one', async (t) => {
  // A connection with nothing attached is closed this long after its last DETACH.
  const setup = await setUp(t, 'attach:\n  allowStandIns: true\n  idleMs: 1000\n', false);
  if (!setup) return;
  const { daemon, driver: d } = setup;
  assert.match(await d.send(`connect ${daemon.socket} rust-idle 1`), /^welcome \d+$/);
  assert.equal(await d.send('attach 0 3'), 'reply ok');
  const pid = daemon.pid;
  const withAttach = socketsOf(pid);
  assert.equal(await d.send('detach 0'), 'reply ok');
  assert.equal(await d.send('stats'), 'stats 1 0 0 0 1');
  await until('the daemon closes the idle attach connection', () => socketsOf(pid) === withAttach - 1, {
    state: () => `the daemon holds ${socketsOf(pid)} sockets, ${withAttach} with the attach connection`,
  });
  assert.equal(await d.send('attach 0 3'), 'reply ok');
  assert.equal(await d.send('stats'), 'stats 2 0 0 1 1');
});

test('vCPUs lost with an attach connection that timed out are decided from their page again after reattach', async (t) => {
  // Attach replies are awaited 1 s: long enough for a running daemon, short for a stopped one.
  const setup = await setUp(t, 'attach:\n  allowStandIns: true\n', true, 2, ['--hello-timeout-ms', '1000']);
  if (!setup) return;
  const { daemon, driver: d, vcpus } = setup;
  t.after(() => {
    try {
      process.kill(daemon.pid, 'SIGCONT'); // a failure while it was stopped must not leave it so
    } catch {
      // gone already
    }
  });
  assert.match(await d.send(`connect ${daemon.socket} rust-lost 2`), /^welcome \d+$/);
  assert.equal(await d.send('attach 0 3'), 'reply ok');
  assert.equal(await d.send('lost'), 'lost 0 due 0');
  vcpus.write(0, PAGE_EXIT);
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.equal(await mismatches(daemon, 'esr'), 1);

  // The daemon stops: vCPU 1's ATTACH gets no reply, its connection is closed, and vCPU 0, attached
  // over it, is released with it. Both are lost; the first attempt is due at once.
  process.kill(daemon.pid, 'SIGSTOP');
  assert.equal(await d.send('attach 1 4'), 'reply failed TimedOut');
  assert.equal(await d.send('stats'), 'stats 1 0 1 0 1');
  assert.equal(await d.send('lost'), 'lost 2 due 1');

  // It runs again: one fresh connection attaches both, and vCPU 0's page decides again.
  process.kill(daemon.pid, 'SIGCONT');
  assert.equal(await d.send('reattach'), 'reattached 2');
  assert.equal(await d.send('stats'), 'stats 3 0 1 2 1');
  assert.equal(await d.send('lost'), 'lost 0 due 0');
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.equal(await mismatches(daemon, 'esr'), 2, 'the exit after the re-attach was read from the page');
});
