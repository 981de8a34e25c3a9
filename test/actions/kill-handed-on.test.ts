/**
 * A VMM process that connects, says HELLO and hands its connection to another process before it
 * exits: the kill's pidfd names the process that is gone, while the connection lives on. No kill of
 * that session may say the VM exited, and the session ends, so that the process holding the
 * connection connects again under its own credentials. Real processes (children/handing-vmm.ts),
 * the in-process plugin server and action sink; then the kill manager alone, on a real process,
 * for each answer of the connection's far end.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { after, before, type TestContext, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions, type KillResult } from '../../actions/index.js';
import { KillManager } from '../../actions/kill-manager.js';
import type { SessionInfo } from '../../events/index.js';
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
const opened: SessionInfo[] = [];
const closed: Array<{ vm: string; pid: number; detail: string | null }> = [];

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
  stack.bus.add({
    name: 'sessions',
    sessionOpened: (s) => opened.push(s),
    sessionClosed: (s, _outcome, detail) => closed.push({ vm: s.vm.id, pid: s.peer.pid, detail }),
  });
});

after(async () => {
  // The process the connection went to is in a group of its own, and no child of this one.
  for (const pid of others) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await until('the handed-to processes to be gone', () => others.every((pid) => !alive(pid)));
  actions.close();
  await stack.close();
});

/**
 * Runs children/handing-vmm.ts for `vm` (`mode` as its third argument) until the connecting process
 * has handed its connection on and exited: that process, the lines it and the holder print, and
 * the holder's pid (killed after the tests).
 */
async function handOn(t: TestContext, vm: string, ...mode: string[]) {
  const first = spawnOwned(process.execPath, ['--import', 'tsx', HANDING, stack.socket, vm, ...mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => killOwned(first));
  const lines: string[] = [];
  createInterface({ input: first.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  await until('the connection to be handed on', () => lines.some((l) => l.startsWith('handed ')));
  const other = Number(lines.find((l) => l.startsWith('handed '))?.split(' ')[1]);
  others.push(other);
  assert.equal((await within('the connecting process to exit', exitOf(first))).code, 0);
  return { first, lines, other };
}

test('the connecting process exits, its connection lives on: the kill fails, the session ends', async (t) => {
  const { first, lines, other } = await handOn(t, 'vm-handed');

  await until('a kill of the session to end', () => finished.length > 0);
  const k = finished[0] as KillResult;
  assert.equal(k.peerPid, first.pid);
  assert.equal(k.outcome, 'failed', `detail: ${k.detail}`);
  assert.match(k.detail ?? '', /the connecting process \(pid \d+\) exited; its connection lives on/);
  assert.ok(alive(other), 'the process holding the connection is still there');

  // The session ends with GOODBYE NORMAL, and the holder's new session is its own.
  await until('the session to end', () => closed.length > 0);
  assert.deepEqual(closed[0], {
    vm: 'vm-handed',
    pid: first.pid,
    detail: `the connecting process (pid ${first.pid}) exited while another process holds its connection`,
  });
  await until('the holder to be served again', () => lines.some((l) => l.startsWith('reconnected, ')));
  // Printed by the holder before it connected again.
  assert.ok(lines.includes('closed goodbye 0'), lines.join('\n'));
  assert.deepEqual(
    opened.map((s) => [s.vm.id, s.peer.pid]),
    [
      ['vm-handed', first.pid],
      ['vm-handed', other],
    ],
  );
  assert.ok(
    finished.every((f) => f.peerPid !== first.pid || f.outcome === 'failed'),
    JSON.stringify(finished.map((f) => [f.peerPid, f.outcome])),
  );
});

test('handed on before HELLO: the session ends at once, before any event of it is decided', async (t) => {
  const { first, lines, other } = await handOn(t, 'vm-early', 'early');
  await until('the holder to be served as itself', () => lines.some((l) => l.startsWith('reconnected, ')), {
    state: () => lines.join(' | '),
  });
  const mine = (vm: string) => opened.filter((s) => s.vm.id === vm).map((s) => s.peer.pid);
  assert.deepEqual(mine('vm-early'), [first.pid, other]);
  assert.ok(lines.includes('closed goodbye 0'), lines.join('\n'));
  // No event of the session on the handed-on connection was decided: no kill names the gone process.
  assert.deepEqual(
    finished.filter((k) => k.peerPid === first.pid).map((k) => k.outcome),
    [],
  );
  assert.ok(!lines.some((l) => /^verdict \d/.test(l)), lines.join('\n'));
});

// The kill manager alone, on a real process: what the connection's far end says decides. A
// VMM's own exit releases it before its pidfd turns readable, so a session the daemon has not
// yet seen close is still `exited` — the kernel's word, not the order the daemon reads them in.
// A session the daemon ended because its connection was handed on answers held for good after
// its end (daemon/session.ts): a later exit of the process is not the VM gone either. A kill that
// finds the connection held asks the session to end, so that the holder connects again as itself.
const cases = [
  { held: false, closed: false, name: 'the session not yet closed, its connection not held' },
  { held: true, closed: false, name: 'the session not yet closed, its connection held' },
  { held: true, closed: true, name: 'the session ended by the daemon as handed on' },
];
for (const { held, closed: ended, name } of cases) {
  test(`the process exits, ${name}`, async (t) => {
    const vmm = spawnOwned(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
    t.after(() => killOwned(vmm));
    const done: KillResult[] = [];
    const kills = new KillManager({ onFinished: (k) => done.push(k) });
    t.after(() => kills.close());
    const pid = vmm.pid as number;
    let asked = 0;
    const s = {
      ...session(`vm-held-${held}-${ended}`),
      peer: { pid, uid: 0, gid: 0 },
      connectionHeld: () => held,
      endHandedOn: () => asked++,
    };
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
    if (ended) kills.sessionClosed(s, 'disconnect');
    await killOwned(vmm);
    await until('the kill to end', () => done.length === 1);
    assert.equal(done[0]?.outcome, held ? 'failed' : 'exited', `detail: ${done[0]?.detail}`);
    // A kill that finds the connection handed on asks the session to end (it ends only if open).
    assert.equal(asked, held ? 1 : 0);
  });
}
