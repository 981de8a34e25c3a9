/**
 * pidfds against real child processes: a pidfd names one process, signals reach only it, and once
 * it has exited the fd answers `gone` (ESRCH) — whatever process holds its PID number afterwards.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { isKvmError, Pidfd, SIGKILL } from '../../kvm/index.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';

const sleepers: ChildProcess[] = [];
after(async () => {
  for (const child of sleepers) await killOwned(child, 'a sleeper');
});

function sleeper(): ChildProcess {
  // Reports SIGTERM on stdout instead of dying, so a stray signal would be visible.
  const script =
    "process.on('SIGTERM',()=>{process.stdout.write('TERM\\n')});setInterval(()=>{},1e6);process.stdout.write('up\\n')";
  const child = spawnOwned(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  sleepers.push(child);
  return child;
}

async function up(child: ChildProcess): Promise<void> {
  const [chunk] = (await within(`sleeper ${child.pid} to start`, once(child.stdout!, 'data'))) as [Buffer];
  assert.match(chunk.toString(), /up/);
}

test('a pidfd signals its own process and sees it exit', async () => {
  const child = sleeper();
  await up(child);
  const pfd = Pidfd.open(child.pid as number);
  try {
    assert.equal(pfd.signal(0), 'sent');
    assert.equal(pfd.exited(), false);
    // A wait forgotten (its kill ended while the process lived) is never called, nor kept.
    let forgottenCalled = 0;
    const forget = pfd.onExit(() => forgottenCalled++);
    assert.equal(pfd.exitWaiters, 1);
    forget();
    forget();
    assert.equal(pfd.exitWaiters, 0);
    const exited = new Promise<void>((resolve) => pfd.onExit(resolve));
    // A second wait on the same pidfd (a later kill of the same VMM) is told as well.
    const exitedToo = new Promise<void>((resolve) => pfd.onExit(resolve));
    const status = exitOf(child);
    assert.equal(pfd.signal(SIGKILL), 'sent');
    const { code, signal } = await within('the sleeper to die of SIGKILL', status);
    assert.equal(code, null);
    assert.equal(signal, 'SIGKILL');
    await within('the pidfd to report the exit', exited);
    await within('the pidfd to report the exit to its second waiter', exitedToo);
    assert.equal(forgottenCalled, 0);
    assert.equal(pfd.exitWaiters, 0);
    assert.equal(pfd.exited(), true);
    assert.equal(pfd.signal(0), 'gone');
    assert.equal(pfd.signal(SIGKILL), 'gone');
  } finally {
    pfd.close();
  }
});

test('after its process exits, a pidfd reaches no other process', async () => {
  const first = sleeper();
  await up(first);
  const pfd = Pidfd.open(first.pid as number);
  await killOwned(first, 'the first sleeper');
  const second = sleeper();
  await up(second);
  let termed = false;
  second.stdout!.on('data', (c: Buffer) => {
    if (c.toString().includes('TERM')) termed = true;
  });
  try {
    assert.equal(pfd.signal(15), 'gone');
    assert.equal(pfd.signal(SIGKILL), 'gone');
    // The second process is alive and was not signalled (a SIGKILL would end it, a SIGTERM prints).
    const probe = Pidfd.open(second.pid as number);
    assert.equal(probe.signal(0), 'sent');
    assert.equal(probe.exited(), false);
    probe.close();
    assert.equal(termed, false);
    assert.equal(second.exitCode, null);
  } finally {
    pfd.close();
    await killOwned(second, 'the second sleeper');
  }
});

test('opening a pidfd for a process that does not exist is a typed ESRCH', () => {
  assert.throws(
    () => Pidfd.open(0x3ffffff),
    (err) => isKvmError(err, 'SEAWALL_KVM_SYSCALL') && err.detail.errnoName === 'ESRCH',
  );
  assert.throws(
    () => Pidfd.open(-1),
    (err) => isKvmError(err, 'SEAWALL_KVM_SYSCALL'),
  );
});

test('close is idempotent and a closed pidfd signals nothing', () => {
  const pfd = Pidfd.open(process.pid);
  assert.equal(pfd.signal(0), 'sent');
  pfd.close();
  pfd.close();
  assert.equal(pfd.closed, true);
  assert.equal(pfd.signal(0), 'gone');
});
