/**
 * Kill enforcement against real VMM processes: the in-process plugin server and pipeline decide,
 * the action sink enforces through pidfds, and the VMM is a child process running the reference
 * PluginClient. Nothing is mocked.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import type { SessionInfo } from '../../events/session-info.js';
import { ACTION } from '../../protocol/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';
import { spawnVmm } from './vmm-child.js';

// Long enough that a VMM told to exit does so before it on a loaded 2-core machine; the stubborn
// VMM is still killed only after it, which is what the tests assert.
const GRACE = 3000;
let stack: Stack;
let actions: Actions;
const finished: KillResult[] = [];
const mismatches: SessionInfo[] = [];
const onFinished: Array<(k: KillResult) => void> = [];

before(async () => {
  stack = await startStack(provider(() => ({ rule: 'kill-it', action: 'kill', graceMs: GRACE })));
  actions = createActions(ActionsConfigSchema.parse({}), {
    kill: {
      onFinished: (k) => {
        finished.push(k);
        for (const f of onFinished.splice(0)) f(k);
      },
      onPidMismatch: (s) => mismatches.push(s),
    },
  });
  stack.bus.add(actions.sink);
});

after(async () => {
  actions.close();
  await stack.close();
});

const nextKill = (vm: string) =>
  new Promise<KillResult>((resolve) => {
    const wait = (k: KillResult) => (k.vm === vm ? resolve(k) : onFinished.push(wait));
    onFinished.push(wait);
  });

test('a VMM that ignores KILL is SIGKILLed through its pidfd once the grace has passed', async () => {
  const done = nextKill('vm-stubborn');
  const vmm = spawnVmm(stack.socket, 'vm-stubborn', 'ignore');
  const told = await vmm.line((l) => l.startsWith('kill '));
  assert.equal(told.line, `kill ${GRACE}`);
  const exit = await vmm.exited;
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.code, null);
  const k = await done;
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(k.rule, 'kill-it');
  assert.equal(k.reason, 'policy');
  assert.equal(k.peerPid, vmm.pid);
  assert.ok(k.finishedAtMs - k.startedAtMs >= GRACE, `enforced after ${k.finishedAtMs - k.startedAtMs} ms`);
  // The VMM heard the verdict before the daemon started counting; allow for that skew only.
  assert.ok(exit.atMs - told.atMs >= GRACE - 100, `killed ${exit.atMs - told.atMs} ms after the verdict`);
  console.log(`grace ${GRACE} ms; SIGKILL ${exit.atMs - told.atMs} ms after the VMM saw the verdict`);
});

test('a VMM that exits by itself is recorded as exited and never signalled', async () => {
  const done = nextKill('vm-obedient');
  const vmm = spawnVmm(stack.socket, 'vm-obedient', 'exit');
  const exit = await vmm.exited;
  assert.equal(exit.code, 0);
  assert.equal(exit.signal, null);
  const k = await done;
  assert.equal(k.outcome, 'exited');
  assert.ok(k.finishedAtMs - k.startedAtMs < GRACE, 'seen through the pidfd, not at the grace end');
});

test('repeated kill decisions for one VM coalesce into one kill', async () => {
  const before = finished.length;
  const done = nextKill('vm-repeat');
  const vmm = spawnVmm(stack.socket, 'vm-repeat', 'ignore', 5);
  await vmm.line(
    (l) =>
      l === `verdict daemon ${ACTION.KILL}` && vmm.lines.filter((x) => x.startsWith('verdict')).length === 5,
  );
  const k = await done;
  await vmm.exited;
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(k.coalesced, 4);
  assert.equal(finished.length, before + 1);
});

test("the kernel's peer pid is killed, never the pid a HELLO claims; an exited VMM's pid is not signalled", async () => {
  // An innocent process whose pid the VMM claims as its own.
  const innocent = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e6)'], { stdio: 'ignore' });
  await once(innocent, 'spawn');
  try {
    const done = nextKill('vm-liar');
    const vmm = spawnVmm(stack.socket, 'vm-liar', 'ignore', 1, innocent.pid as number);
    const exit = await vmm.exited;
    assert.equal(exit.signal, 'SIGKILL');
    const k = await done;
    assert.equal(k.vmmPid, innocent.pid);
    assert.equal(k.peerPid, vmm.pid);
    assert.ok(mismatches.some((s) => s.vm.id === 'vm-liar'));
    assert.equal(innocent.exitCode, null);
    assert.equal(innocent.signalCode, null);
    // A VMM that exits within its grace, followed by a fresh process (which may well get a recycled
    // pid): the kill ends as `exited` and the newcomer is never signalled.
    const gone = nextKill('vm-gone');
    const vmm2 = spawnVmm(stack.socket, 'vm-gone', 'exit');
    await vmm2.exited;
    const newcomer = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e6)'], { stdio: 'ignore' });
    await once(newcomer, 'spawn');
    const k2 = await gone;
    assert.equal(k2.outcome, 'exited');
    // Past the grace end nothing else is pending, and the newcomer lives.
    assert.equal(actions.kills.inFlight, 0);
    assert.equal(newcomer.exitCode, null);
    assert.equal(newcomer.signalCode, null);
    newcomer.kill('SIGKILL');
    await once(newcomer, 'exit');
  } finally {
    innocent.kill('SIGKILL');
    await once(innocent, 'exit');
  }
});

test('with enforcement off a kill is recorded as failed and the VMM is left alone', async () => {
  let resolveKill: (k: KillResult) => void = () => {};
  const result = new Promise<KillResult>((r) => {
    resolveKill = r;
  });
  const quiet = createActions(ActionsConfigSchema.parse({ kill: { enforce: false } }), {
    kill: { onFinished: (k) => resolveKill(k) },
  });
  const s2 = await startStack(provider(() => ({ rule: 'kill-it', action: 'kill', graceMs: 50 })));
  s2.bus.add(quiet.sink);
  const vmm = spawnVmm(s2.socket, 'vm-spared', 'ignore');
  try {
    const k = await result;
    assert.equal(k.outcome, 'failed');
    assert.match(k.detail ?? '', /enforcement disabled/);
    assert.equal(vmm.proc.exitCode, null);
    assert.equal(vmm.proc.signalCode, null);
  } finally {
    vmm.proc.kill('SIGKILL');
    await vmm.exited;
    quiet.close();
    await s2.close();
  }
});
