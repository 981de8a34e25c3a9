/**
 * A VMM process that connects, says HELLO and hands its connection to another process before it
 * exits: the kill's pidfd names the process that is gone, while the VM is still served. No kill of
 * that session may say the VM exited. Real processes (children/handing-vmm.ts), the in-process
 * plugin server and action sink; then the kill manager alone, on a real process, for each answer
 * of the connection's far end.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import { KillManager } from '../../actions/kill-manager.js';
import { Pidfd } from '../../kvm/index.js';
import { provider, type Stack, startStack } from '../attach/stack.js';
import { exitOf, killOwned, spawnOwned } from '../helpers/processes.js';
import { until, within } from '../helpers/wait.js';
import { session } from '../store/records.js';

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

// The kill manager alone, on a real process: what the connection's far end says decides. A
// VMM's own exit releases it before its pidfd turns readable, so a session the daemon has not
// yet seen close is still `exited` — the kernel's word, not the order the daemon reads them in.
for (const held of [false, true]) {
  test(`the process exits, the session not yet closed, its connection ${held ? '' : 'not '}held`, async (t) => {
    const vmm = spawnOwned(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    t.after(() => killOwned(vmm));
    const ended: KillResult[] = [];
    const kills = new KillManager({ onFinished: (k) => ended.push(k) });
    t.after(() => kills.close());
    const pid = vmm.pid as number;
    const s = { ...session(`vm-held-${held}`), peer: { pid, uid: 0, gid: 0 }, connectionHeld: () => held };
    kills.sessionOpened(s, Pidfd.open(pid));
    const r = {
      session: s,
      seq: 1,
      rule: 'r',
      policyVersion: 'v',
      graceMs: 600_000,
      reason: 'policy' as const,
    };
    assert.equal(kills.request(r), 'started');
    await killOwned(vmm);
    await until('the kill to end', () => ended.length === 1);
    assert.equal(ended[0]?.outcome, held ? 'failed' : 'exited', `detail: ${ended[0]?.detail}`);
  });
}
