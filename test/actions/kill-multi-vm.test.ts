/**
 * What counts as terminated for a VMM process that serves several VMs (docs/protocol.md §5.1):
 * after KILL on one VM, the process is spared only when it ended that VM's 1.1 session with
 * GOODBYE VM_EXITING before the grace ran out; a GOODBYE NORMAL says nothing about the VM, and the
 * process is SIGKILLed through its pidfd however many other VMs it serves. Real processes, real
 * sockets, the in-process plugin server and action sink.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';

const CHILD = new URL('./children/two-vm-vmm.ts', import.meta.url).pathname;
// Long enough for the child to say GOODBYE on a busy machine; the test never measures it.
const GRACE = 5000;
let stack: Stack;
let actions: Actions;
const finished = new Map<string, (k: KillResult) => void>();
const children: ChildProcess[] = [];

before(async () => {
  // Kill VM A's; VM B sends nothing.
  stack = await startStack(provider(() => ({ rule: 'kill-a', action: 'kill', graceMs: GRACE })));
  actions = createActions(ActionsConfigSchema.parse({}), {
    kill: { onFinished: (k) => finished.get(k.vm)?.(k) },
  });
  stack.bus.add(actions.sink);
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  actions.close();
  await stack.close();
});

function twoVmProcess(vmA: string, vmB: string, mode: 'vm-exiting' | 'goodbye') {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, stack.socket, vmA, vmB, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(proc);
  const lines: string[] = [];
  const seen = new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      lines.push(l);
      if (l === 'closed') resolve();
    });
    proc.once('exit', () => reject(new Error(`VMM exited early: ${lines.join(',')}`)));
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_c, s) => resolve(s)));
  return { proc, closed: seen, exited };
}

const killOf = (vm: string) => new Promise<KillResult>((resolve) => finished.set(vm, resolve));

test('GOODBYE VM_EXITING on the killed VM spares a process that still serves another VM', async () => {
  const kill = killOf('multi-a1');
  const vmm = twoVmProcess('multi-a1', 'multi-b1', 'vm-exiting');
  await vmm.closed;
  const k = await kill;
  assert.equal(k.outcome, 'exited');
  assert.match(k.detail ?? '', /VM exited; pid \d+ still serves 1 VM/);
  assert.equal(vmm.proc.exitCode, null, 'the process lives on');
  assert.equal(vmm.proc.signalCode, null);
});

test('GOODBYE NORMAL does not say the VM is gone: the process is SIGKILLed, its other VM with it', async () => {
  const kill = killOf('multi-a2');
  const vmm = twoVmProcess('multi-a2', 'multi-b2', 'goodbye');
  await vmm.closed;
  const k = await kill;
  assert.equal(k.outcome, 'sigkilled');
  assert.equal(await vmm.exited, 'SIGKILL');
});
