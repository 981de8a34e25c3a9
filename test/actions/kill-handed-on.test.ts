/**
 * A VMM process that connects, says HELLO and hands its connection to another process before it
 * exits: the kill's pidfd names the process that is gone, while the VM is still served. No kill of
 * that session may say the VM exited. Real processes (children/handing-vmm.ts), the in-process
 * plugin server and action sink.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';

const HANDING = new URL('./children/handing-vmm.ts', import.meta.url).pathname;
let stack: Stack;
let actions: Actions;
const finished: KillResult[] = [];
const others: number[] = [];

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  // A grace far longer than the test: any outcome before it comes from the pidfd.
  stack = await startStack(provider(() => ({ rule: 'kill-it', action: 'kill', graceMs: 600_000 })));
  actions = createActions(ActionsConfigSchema.parse({}), { kill: { onFinished: (k) => finished.push(k) } });
  stack.bus.add(actions.sink);
});

after(async () => {
  // The process the connection went to is in a group of its own, and no child of this one.
  for (const pid of others) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await until('the handed-to processes to be gone', () => others.every((pid) => !alive(pid)));
  actions.close();
  await stack.close();
});

test('the connecting process exits, its connection lives on: the kill fails, never "exited"', async (t) => {
  const first = spawnOwned(process.execPath, ['--import', 'tsx', HANDING, stack.socket, 'vm-handed'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(first));
  const lines: string[] = [];
  createInterface({ input: first.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  await until('the connection to be handed on', () => lines.some((l) => l.startsWith('handed ')));
  const other = Number(lines.find((l) => l.startsWith('handed '))?.split(' ')[1]);
  others.push(other);
  assert.equal((await within('the connecting process to exit', exitOf(first))).code, 0);

  await until('a kill of the session to end', () => finished.length > 0);
  const k = finished[0] as KillResult;
  assert.equal(k.peerPid, first.pid);
  assert.equal(k.outcome, 'failed', `detail: ${k.detail}`);
  assert.match(k.detail ?? '', /the connecting process \(pid \d+\) exited; its connection lives on/);
  assert.ok(alive(other), 'the process serving the VM is still there');
  // And it is still served: a verdict comes after that kill ended.
  const seen = lines.filter((l) => l.startsWith('verdict ')).length;
  await until('another verdict', () => lines.filter((l) => l.startsWith('verdict ')).length > seen);
  assert.ok(
    finished.every((f) => f.outcome === 'failed'),
    JSON.stringify(finished.map((f) => f.outcome)),
  );
});
