/**
 * A kill meets the end of its session: the session closes before the kill is handed over, the
 * VM's id comes back in another process while the first one's kill is in its grace, or the same
 * process says its VM exited and connects for it again. In each, the process the KILL verdict
 * went to is SIGKILLed once its grace ends. Real processes (children/session-peer.ts), the
 * in-process plugin server and action sink.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';

const PEER = new URL('./children/session-peer.ts', import.meta.url).pathname;
// vm-x's first kill is still in its grace when the second process connects.
const GRACE: Record<string, number> = { 'vm-x': 3000 };
let stack: Stack;
let actions: Actions;
const finished: KillResult[] = [];
const procs: ChildProcess[] = [];

before(async () => {
  stack = await startStack(
    provider((e) => ({ rule: 'kill-it', action: 'kill', graceMs: GRACE[e.vm.id] ?? 300 })),
  );
  actions = createActions(ActionsConfigSchema.parse({}), { kill: { onFinished: (k) => finished.push(k) } });
  stack.bus.add(actions.sink);
});

after(async () => {
  for (const p of procs) await killOwned(p);
  actions.close();
  await stack.close();
});

function peer(vm: string, mode: string) {
  const p = spawnOwned(process.execPath, ['--import', 'tsx', PEER, stack.socket, vm, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  procs.push(p);
  const lines: string[] = [];
  createInterface({ input: p.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  return {
    pid: p.pid as number,
    line: (l: string) => until(`'${l}' from the ${vm} peer`, () => lines.includes(l)),
    exit: () => within(`the ${vm} peer (pid ${p.pid}) to end`, exitOf(p)),
  };
}

const kills = (vm: string) => finished.filter((k) => k.vm === vm);

test('a session that closes before its kill is handed over: the process is still SIGKILLed', async () => {
  const a = peer('vm-race', 'send-close');
  await a.line('closed');
  const exit = await a.exit();
  assert.equal(exit.signal, 'SIGKILL');
  await until('the kill to be recorded', () => kills('vm-race').length === 1);
  assert.equal(kills('vm-race')[0]?.outcome, 'sigkilled');
});

test('the VM id back in another process during the first kill’s grace: each process is killed', async () => {
  const p1 = peer('vm-x', 'close-linger');
  await p1.line('closed');
  const p2 = peer('vm-x', 'ignore');
  await p2.line('verdict 3');
  const [e1, e2] = await Promise.all([p1.exit(), p2.exit()]);
  assert.deepEqual([e1.signal, e2.signal], ['SIGKILL', 'SIGKILL']);
  await until('both kills to be recorded', () => kills('vm-x').length === 2);
  assert.deepEqual(
    kills('vm-x')
      .map((k) => k.peerPid)
      .sort(),
    [p1.pid, p2.pid].sort(),
  );
});

test('GOODBYE VM_EXITING, then the same VM again from the same process: it is not spared', async () => {
  const c = peer('vm-re', 'exiting-reconnect');
  await c.line('reconnected');
  const exit = await c.exit();
  assert.equal(exit.signal, 'SIGKILL');
  await until('the kill to be recorded', () => kills('vm-re').length === 1);
  assert.equal(kills('vm-re')[0]?.outcome, 'sigkilled');
});
