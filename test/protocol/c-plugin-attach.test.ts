/**
 * vCPU attachment in the C plugin (vmm/c, docs/protocol.md §9a), against the real daemon with
 * stand-in vCPUs (sealed memfds shaped like kvm_run, `attach.allowStandIns`): the fixture
 * test/protocol/fixtures/attach.c writes an exit into the page that the event's copy contradicts,
 * so a verdict taken from the page shows in `seawall_kernel_mismatches_total`.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { defaultAttachSocket } from '../../attach/index.js';
import { controlRequest } from '../../control/index.js';
import { metricSum, type RunningDaemon, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { exitOf, killOwned, runFile as run, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { cBuildDir, fixtureBinary } from './c-fixtures.js';

const dir = cBuildDir(); // made at the top level, so it is removed after the file's tests, not the first one

/** A daemon whose attach socket is the default one beside its plugin socket; `attach` is its config. */
async function daemonWith(attach: string): Promise<RunningDaemon> {
  const home = mkdtempSync(join(tmpdir(), 'seawall-ca-'));
  writeFileSync(join(home, 'config.yaml'), `attach:\n${attach}`);
  return startDaemon({ dir: home, args: ['--config', join(home, 'config.yaml')] });
}

/** Kernel mismatches counted by field, from the daemon's metrics. */
async function mismatches(d: RunningDaemon): Promise<Record<string, number>> {
  const text = await scrape(d.metricsUrl as string);
  const out: Record<string, number> = {};
  for (const field of ['esr', 'gpa'])
    out[field] = metricSum(text, 'seawall_kernel_mismatches_total', (l) => l.includes(`field="${field}"`));
  return out;
}

/** The fixture's stdout lines as they come, and a wait (with a deadline) for one of them. */
function linesOf(proc: ChildProcess) {
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
  return { lines, line };
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
  const { lines, line } = linesOf(proc);

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

test('vCPUs lost with an attach connection that timed out are decided from their page again after seawall_reattach', async (t) => {
  const bin = await fixtureBinary(t, 'attach');
  if (!bin) return;
  const d = await daemonWith('  allowStandIns: true\n');
  const proc = spawnOwned(bin, [d.socket, 'lost'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(async () => {
    await killOwned(proc, 'the attach fixture');
    try {
      process.kill(d.pid, 'SIGCONT'); // a failure while it was stopped must not leave it so
    } catch {
      // gone already
    }
    await d.kill();
    removeDir(d.dir);
  });
  const { lines, line } = linesOf(proc);

  await line('stop?');
  assert.deepEqual(await mismatches(d), { esr: 1, gpa: 1 }, 'vCPU 0 is attached: its page decides');
  process.kill(d.pid, 'SIGSTOP');
  proc.stdin!.write('go\n');
  await line('cont?');
  process.kill(d.pid, 'SIGCONT');
  proc.stdin!.write('go\n');
  const exit = await within('the attach fixture to exit', exitOf(proc));
  assert.deepEqual(await mismatches(d), { esr: 2, gpa: 2 }, 'the second exit was read from the page too');
  assert.deepEqual(lines, [
    'connect r=0',
    'attach r=0 attached=1',
    'sea source=daemon',
    'stop?',
    // The stopped daemon never answered: the connection closed, and vCPU 0 went with it. vCPU 1's
    // ATTACH went out on it too.
    'attach r=ETIMEDOUT attached=0 lost=2',
    'cont?',
    'reattach r=2 attached=2 lost=0 failed=1', // one fresh connection, both attached again
    'sea source=daemon',
  ]);
  assert.equal(exit.code, 0);
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

test('the attach socket the C plugin derives from the plugin socket is the one the daemon listens on', async (t) => {
  const bin = await fixtureBinary(t, 'attach-wire');
  if (!bin) return;
  const long = `/${'d'.repeat(94)}/vm.sock`; // fits in sun_path; "vm-attach.sock" beside it does not
  const paths = ['/run/seawall/plugin.sock', '/tmp/vm1.sock', 'vm2', 'plugin.sock', 'a/.sock', long];
  const { stdout } = await run(bin, ['paths', ...paths], { timeout: 30_000 });
  assert.deepEqual(stdout.split('\n').slice(0, -1), [
    ...paths.slice(0, -1).map(defaultAttachSocket),
    '', // too long for a socket address: none
    'fd:', // a plugin connected over an fd has no default
    'set:/explicit/a.sock:1',
  ]);
});

test('the attach records, their replies, and what each refusal or failure does to the connection', async (t) => {
  const bin = await fixtureBinary(t, 'attach-wire');
  if (!bin) return;
  const work = mkdtempSync(join(dir, 'wire-'));
  const { stdout } = await run(bin, ['wire', work], { timeout: 30_000 });
  const lines = stdout.trim().split('\n');
  // The listener's lines and the plugin's interleave as the two processes run: each in its order.
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('srv ')),
    [
      'no-session r=ENOTCONN', // vCPU 1 registered: attached after the next WELCOME
      'range r=EINVAL badfd r=EBADF',
      'connect-fd r=0 attached=0 failed=1', // connected over an fd, no attach socket set: counted
      'connect r=0 attached=1 failed=1 due=0', // the next WELCOME attaches vCPU 1; nothing is lost
      'past-hello r=EINVAL', // the HELLO declared 2 vCPUs
      'bad-fd r=status6 attached=1 refused=1 open=1', // BAD_FD keeps the connection
      // A closing status closes it: vCPU 1, attached over it, is lost.
      'session-mismatch r=status8 attached=0 refused=2 open=0 lost=1',
      // No reply in time: closed, out of step; vCPU 0's ATTACH went out on it, so it is lost too.
      'silent r=ETIMEDOUT attached=0 failed=2 open=0 lost=2',
      'closed r=EPIPE attached=0 failed=3 open=0',
      'ok r=0 attached=1',
      'detach r=0 attached=0 again=ENOENT',
      'after-idle r=0 attached=1 failed=3 lost=1', // the closed connection is replaced, not counted
      // seawall_reattach attaches the lost vCPU 1 on the open connection.
      'reattach due=1 r=1 attached=2 lost=0 failed=3 refused=2 backoff=50 open=1',
      'timeout r=ETIMEDOUT attached=0 lost=2 open=0', // both lost with the connection
      // Due at once; its one connection closes at the first request: both stay lost, the untried
      // one is counted too, and the next attempt waits twice as long.
      'reattach-fails due=1 r=EPIPE attached=0 lost=2 failed=6 refused=2 backoff=100 open=0',
      'reattach-again due=1 r=2 attached=2 lost=0 failed=6 refused=2 backoff=50 open=1',
      // The listener closed that connection holding both: due, found lost, and attached again.
      'daemon-closed due=1 r=2 attached=2 lost=0 failed=6 refused=2 backoff=50 open=1',
      // A closing status: vCPU 0 is refused, not lost; vCPU 1 goes with the connection and is back.
      'malformed r=status1 attached=0 lost=1',
      'reattach-one due=1 r=1 attached=1 lost=0 failed=6 refused=3 backoff=50 open=1',
      'session-end open=0 attached=0',
      // The replay's echo keeps the session's attach connection and every registration.
      'replayed r=0 sent="hello/1.1 sea1r hb" kept=0 open=1 attached=2 registered=2',
      // vCPU 0's connection closed at its ATTACH: lost. vCPU 1 is past that HELLO's vcpu_count:
      // counted, and not lost, since no re-attach in this session could succeed.
      'smaller-hello r=0 attached=0 failed=8 lost=1',
      'closed open=0 registered=0', // seawall_close forgets the fds: the caller may close them
      'listener exit=0', // it saw every connection closed
    ],
  );
  assert.deepEqual(
    lines.filter((l) => l.startsWith('srv ')),
    [
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0',
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s6',
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s8',
      'srv conn1 eof',
      'srv conn2 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> n',
      'srv conn2 eof',
      'srv conn3 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> x',
      'srv conn3 closed',
      'srv conn4 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn4 len=24 ok=1 op=2 session=9 vcpu=0 fds=0 -> s0x', // DETACH carries no fd
      'srv conn4 closed', // holding nothing, as the daemon closes a connection idle too long
      'srv conn5 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn5 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0', // the re-attach
      'srv conn5 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> n',
      'srv conn5 eof',
      'srv conn6 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> x', // one connection for the attempt
      'srv conn6 closed',
      'srv conn7 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn7 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0x',
      'srv conn7 closed',
      'srv conn8 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn8 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0',
      'srv conn8 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s1',
      'srv conn8 eof',
      'srv conn9 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0', // vCPU 1 alone
      'srv conn9 eof', // the session's end closed the attach connection
      'srv conn10 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn10 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0',
      'srv conn10 eof',
      'srv conn11 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> x',
      'srv conn11 closed',
    ],
  );
});

test('a reply status the plugin does not know is a refusal that keeps the connection and every vCPU attached over it', async (t) => {
  const bin = await fixtureBinary(t, 'attach-wire');
  if (!bin) return;
  const work = mkdtempSync(join(dir, 'unknown-'));
  const { stdout } = await run(bin, ['unknown', work], { timeout: 30_000 });
  const lines = stdout.trim().split('\n');
  assert.deepEqual(
    lines.filter((l) => !l.startsWith('srv ')),
    [
      'connect r=0',
      'first r=0 attached=1 refused=0 failed=0 lost=0 open=1 due=0',
      // Past a u16: refused, counted so; vCPU 1 stays attached on the open connection.
      'u16 r=status65536 attached=1 refused=1 failed=0 lost=0 open=1 due=0',
      // Past an int: still a positive refusal (INT_MAX), never mistaken for an errno.
      'int r=status2147483647 attached=1 refused=2 failed=0 lost=0 open=1 due=0',
      'again r=0 attached=2 refused=2 failed=0 lost=0 open=1 due=0',
      'listener exit=0',
    ],
  );
  assert.deepEqual(
    lines.filter((l) => l.startsWith('srv ')),
    [
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=1 fds=1 -> s0',
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s65536',
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s4294967295',
      'srv conn1 len=24 ok=1 op=1 session=9 vcpu=0 fds=1 -> s0',
      'srv conn1 eof', // one connection throughout, closed by the plugin at the end
    ],
  );
});
