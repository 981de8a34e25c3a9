/**
 * Kill enforcement against real VMM processes: the in-process plugin server and pipeline decide,
 * the action sink enforces through pidfds, and the VMM is a child process running the reference
 * PluginClient. Nothing is mocked. One test drives the kill manager directly, on a child process:
 * a kill decision that arrives during another's grace.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, type TestContext, test } from 'node:test';
import {
  type Actions,
  ActionsConfigSchema,
  createActions,
  KillManager,
  type KillResult,
} from '../../actions/index.js';
import type { SessionInfo } from '../../events/session-info.js';
import { Pidfd } from '../../kvm/index.js';
import { ACTION } from '../../protocol/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { within } from '../helpers/wait.js';
import { session } from '../store/records.js';
import { spawnVmm, type VmmChild } from './vmm-child.js';

const GRACE = 400;
/**
 * The grace of a VMM that exits by itself: far longer than its exit can take even on a loaded
 * machine, so an outcome before it ends was seen through the pidfd, not found at the grace end.
 */
const LONG_GRACE = 60_000;
const vmms: VmmChild[] = [];
let stack: Stack;
let actions: Actions;
const finished: KillResult[] = [];
const mismatches: SessionInfo[] = [];
const onFinished: Array<(k: KillResult) => void> = [];

before(async () => {
  stack = await startStack(
    provider((e) => ({
      rule: 'kill-it',
      action: 'kill',
      graceMs: ['vm-obedient', 'vm-gone'].includes(e.vm.id) ? LONG_GRACE : GRACE,
    })),
  );
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
  for (const vmm of vmms) await vmm.kill();
  actions.close();
  await stack.close();
});

const nextKill = (vm: string) =>
  within(
    `the kill of ${vm} to finish`,
    new Promise<KillResult>((resolve) => {
      const wait = (k: KillResult) => (k.vm === vm ? resolve(k) : onFinished.push(wait));
      onFinished.push(wait);
    }),
  );

const startVmm = (...args: Parameters<typeof spawnVmm>): VmmChild => {
  const child = spawnVmm(...args);
  vmms.push(child);
  return child;
};

test('a VMM that ignores KILL is SIGKILLed through its pidfd once the grace has passed', async () => {
  const done = nextKill('vm-stubborn');
  const vmm = startVmm(stack.socket, 'vm-stubborn', 'ignore');
  const told = await vmm.line((l) => l.startsWith('kill '));
  assert.equal(told.line, `kill ${GRACE}`);
  const exit = await vmm.exited();
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.code, null);
  const k = await done;
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(k.rule, 'kill-it');
  assert.equal(k.reason, 'policy');
  assert.equal(k.peerPid, vmm.pid);
  assert.ok(k.finishedAtMs - k.startedAtMs >= GRACE, `enforced after ${k.finishedAtMs - k.startedAtMs} ms`);
  // Seen exiting (which can only be late) no sooner than the grace after the kill decision.
  assert.ok(exit.atMs >= k.startedAtMs + GRACE, `dead ${exit.atMs - k.startedAtMs} ms after the decision`);
});

test('a VMM that exits by itself is recorded as exited and never signalled', async () => {
  const done = nextKill('vm-obedient');
  const vmm = startVmm(stack.socket, 'vm-obedient', 'exit');
  const exit = await vmm.exited();
  assert.equal(exit.code, 0);
  assert.equal(exit.signal, null);
  const k = await done;
  assert.equal(k.outcome, 'exited');
  assert.ok(k.finishedAtMs - k.startedAtMs < LONG_GRACE, 'seen through the pidfd, not at the grace end');
});

test('repeated kill decisions for one VM coalesce into one kill', async () => {
  const before = finished.length;
  const done = nextKill('vm-repeat');
  const vmm = startVmm(stack.socket, 'vm-repeat', 'ignore', 5);
  await vmm.line((l) => l === `verdict daemon ${ACTION.KILL}`);
  const k = await done;
  await vmm.exited();
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(k.coalesced, 4);
  assert.equal(finished.length, before + 1);
});

/**
 * A KillManager of its own and a VMM stand-in process, both stopped after the test: `result` is
 * the first kill to finish, `of(vm, id)` a 1.1 session of the stand-in for `vm`.
 */
async function standInKill(t: TestContext) {
  const vmm = spawnOwned(process.execPath, ['-e', 'setInterval(()=>{},1e6)'], { stdio: 'ignore' });
  await within('the VMM stand-in to start', once(vmm, 'spawn'));
  t.after(() => killOwned(vmm, 'the VMM stand-in'));
  let resolveKill: (k: KillResult) => void = () => {};
  const result = new Promise<KillResult>((r) => {
    resolveKill = r;
  });
  const kills = new KillManager({ onFinished: (k) => resolveKill(k) });
  t.after(() => kills.close());
  const pid = vmm.pid as number;
  const of = (vm: string, id = 1n) => ({
    ...session(vm, id),
    minor: 1,
    vmmPid: pid,
    peer: { pid, uid: 0, gid: 0 },
  });
  return { vmm, kills, result, of };
}

test('a decision with a shorter grace folded into a running kill brings the SIGKILL forward', async (t) => {
  const { vmm, kills, result, of } = await standInKill(t);
  const s = of('vm-hasten');
  kills.sessionOpened(s);
  const ask = (rule: string, graceMs: number) =>
    kills.request({ session: s, seq: null, rule, policyVersion: 'v', graceMs, reason: 'policy' });
  assert.equal(ask('soft-kill', LONG_GRACE), 'started');
  assert.equal(ask('kill-now', 0), 'coalesced');
  // The first grace ends past the wait's deadline: a SIGKILL that waited for it fails the wait.
  const k = await within('the kill to finish', result);
  assert.equal(k.outcome, 'sigkilled');
  assert.equal((await within('the stand-in to end', exitOf(vmm))).signal, 'SIGKILL');
  assert.ok(k.finishedAtMs - k.startedAtMs < LONG_GRACE, 'enforced before the first grace ended');
  assert.equal(k.graceMs, 0);
  assert.equal(k.coalesced, 1);
});

test('a process that said VM_EXITING for the killed VM is spared though its other VM is between sessions at the grace end', async (t) => {
  const { vmm, kills, result, of } = await standInKill(t);
  const a = of('vm-a', 1n);
  const b = of('vm-b', 2n);
  kills.sessionOpened(a);
  kills.sessionOpened(b);
  kills.request({
    session: a,
    seq: null,
    rule: 'kill-a',
    policyVersion: 'v',
    graceMs: GRACE,
    reason: 'policy',
  });
  kills.sessionClosed(a, 'vm_exiting');
  // VM B's plugin missed a deadline and is reconnecting: no session of B when A's grace ends.
  kills.sessionClosed(b, 'disconnect');
  const k = await within('the kill to finish', result);
  assert.equal(k.outcome, 'exited');
  assert.match(k.detail ?? '', /VM exited; pid \d+ still serves 1 VM/);
  assert.equal(vmm.exitCode, null, 'the process, and VM B with it, lives on');
  assert.equal(vmm.signalCode, null);
});

test("the kernel's peer pid is killed, never the pid a HELLO claims; an exited VMM's pid is not signalled", async () => {
  // An innocent process whose pid the VMM claims as its own.
  const innocent = spawnOwned(process.execPath, ['-e', 'setInterval(()=>{},1e6)'], { stdio: 'ignore' });
  await within('the innocent process to start', once(innocent, 'spawn'));
  try {
    const done = nextKill('vm-liar');
    const vmm = startVmm(stack.socket, 'vm-liar', 'ignore', 1, innocent.pid as number);
    const exit = await vmm.exited();
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
    const vmm2 = startVmm(stack.socket, 'vm-gone', 'exit');
    await vmm2.exited();
    const newcomer = spawnOwned(process.execPath, ['-e', 'setInterval(()=>{},1e6)'], { stdio: 'ignore' });
    await within('the newcomer to start', once(newcomer, 'spawn'));
    const k2 = await gone;
    assert.equal(k2.outcome, 'exited');
    // The kill is over (its VMM exited), nothing else is pending, and the newcomer lives.
    assert.equal(actions.kills.inFlight, 0);
    assert.equal(newcomer.exitCode, null);
    assert.equal(newcomer.signalCode, null);
    await killOwned(newcomer, 'the newcomer');
  } finally {
    await killOwned(innocent, 'the innocent process');
  }
});

test('with enforcement off a kill is recorded as failed and the VMM is left alone', async (t) => {
  // Each wait for the VMM's exit is forgotten when its kill ends: a storm of kill decisions for a
  // VMM that lives on (enforcement off, or the signal refused) must not pile up callbacks.
  const waits = { asked: 0, forgotten: 0 };
  const onExit = Pidfd.prototype.onExit;
  Pidfd.prototype.onExit = function (this: Pidfd, f: () => void) {
    waits.asked++;
    const forget = onExit.call(this, f);
    return () => {
      waits.forgotten++;
      forget();
    };
  };
  t.after(() => {
    Pidfd.prototype.onExit = onExit;
  });
  let resolveKill: (k: KillResult) => void = () => {};
  const result = new Promise<KillResult>((r) => {
    resolveKill = r;
  });
  const quiet = createActions(ActionsConfigSchema.parse({ kill: { enforce: false } }), {
    kill: { onFinished: (k) => resolveKill(k) },
  });
  const s2 = await startStack(provider(() => ({ rule: 'kill-it', action: 'kill', graceMs: 50 })));
  s2.bus.add(quiet.sink);
  const vmm = startVmm(s2.socket, 'vm-spared', 'ignore');
  try {
    const k = await result;
    assert.equal(k.outcome, 'failed');
    assert.match(k.detail ?? '', /enforcement disabled/);
    assert.equal(vmm.proc.exitCode, null);
    assert.equal(vmm.proc.signalCode, null);
    assert.deepEqual(waits, { asked: 1, forgotten: 1 });
  } finally {
    await vmm.kill();
    quiet.close();
    await s2.close();
  }
});
