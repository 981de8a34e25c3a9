/**
 * The Rust crate's vCPU attachment (vmm/rust, Plugin::attach_vcpu) against the daemon as it
 * ships, with stand-in vCPUs (sealed memfds shaped like kvm_run, `attach.allowStandIns`): the
 * crate's example examples/attach_driver.rs is driven line by line, its vCPU fd inherited as fd 3
 * while this test writes the exits into the page, as KVM would. The attach socket is the default
 * one beside the plugin socket, which the crate derives by itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { controlRequest } from '../../control/index.js';
import { StandInVcpus } from '../../vmm/attach-client.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { spawnOwned } from '../helpers/processes.js';
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
  const cargo = cargoPath(t);
  if (!cargo) return;
  await run(cargo, ['build', '--offline', '--quiet', '--example', 'attach_driver'], {
    cwd: RUST_DIR,
    timeout: 170_000,
  });
  const dir = mkdtempSync(join(tmpdir(), 'seawall-rattach-'));
  let daemon: RunningDaemon | null = null;
  let driver: Driver | null = null;
  const vcpus = new StandInVcpus(1);
  t.after(async () => {
    await driver?.stop();
    await daemon?.stop();
    vcpus.close();
    removeDir(dir);
  });
  const standIns = join(dir, 'stand-ins.yaml');
  writeFileSync(standIns, 'attach:\n  allowStandIns: true\n');
  const noAttach = join(dir, 'no-attach.yaml');
  writeFileSync(noAttach, 'attach:\n  enabled: false\n');
  daemon = await startDaemon({ dir, args: ['--config', standIns] });

  const proc = spawnOwned(join(RUST_DIR, 'target/debug/examples/attach_driver'), [], {
    stdio: ['pipe', 'pipe', 'pipe', vcpus.fds[0] as number],
  });
  driver = new Driver(proc);
  const d = driver;
  const stdio = socketsOf(proc.pid as number);

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
  await daemon.stop();
  daemon = await startDaemon({ dir, args: ['--config', standIns] });
  assert.match(await d.send('poll 0'), /^error /, 'the GOODBYE SHUTDOWN ends the session');
  assert.equal(await d.send('stats'), 'stats 1 0 0 0 0');
  assert.equal(socketsOf(proc.pid as number), stdio, 'the attach connection went with the session');
  const second = await d.send(`connect ${daemon.socket} rust-attach 1`);
  assert.match(second, /^welcome \d+$/);
  assert.equal(await d.send('stats'), 'stats 2 0 0 1 1');
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.equal(await mismatches(daemon, 'esr'), 1, 'the new session reads the page too');
  assert.equal(await d.send('close'), 'ok');
  assert.equal(socketsOf(proc.pid as number), stdio, 'close closes the attach connection too');

  // (4) A daemon without an attach socket: counted, and the events flow as before.
  await daemon.stop();
  daemon = await startDaemon({ dir, args: ['--config', noAttach] });
  assert.match(await d.send(`connect ${daemon.socket} rust-attach 1`), /^welcome \d+$/);
  assert.equal(await d.send('stats'), 'stats 2 0 1 0 1');
  assert.equal(await d.send(CLAIM), 'verdict INJECT daemon');
  assert.match(await d.send('attach 0 3'), /^reply failed (NotFound|ConnectionRefused)$/);
});
