/**
 * The per-process bounds on attach connections (attach/attach-server.ts): those that hold no vCPU
 * (EMPTY_ATTACH_PER_PROCESS), and all of them, at one per plugin session of the process plus
 * SPARE_ATTACH_PER_PROCESS. A process asking for more attach connections than the server takes at
 * all, empty or each holding a vCPU, does not keep another VM's plugin from attaching.
 */
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { EMPTY_ATTACH_PER_PROCESS, SPARE_ATTACH_PER_PROCESS } from '../../attach/attach-server.js';
import { AttachClient, StandInVcpus } from '../../vmm/attach-client.js';
import { spawnOwned, stopOwned } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';
import { type AttachStack, attachStack } from './stack.js';

const HOLD = new URL('./children/hold-attach.ts', import.meta.url).pathname;
const GREEDY = new URL('./children/greedy-attach.ts', import.meta.url).pathname;
const MAX_CONNECTIONS = 12;

/** Another process running `child` with `args`, stopped when the test ends; its stdout lines. */
function other(s: AttachStack, child: string, args: string[]): string[] {
  const proc = spawnOwned(process.execPath, ['--import', 'tsx', child, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  s.own(() => stopOwned(proc, 'the process holding attach connections'));
  const said: string[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => said.push(l));
  return said;
}

/** This process's VM: a session, and its one vCPU attached. */
async function attachOne(s: AttachStack): Promise<void> {
  const plugin = await s.plugin('attaching-vm', 1);
  const vcpus = new StandInVcpus(1);
  s.own(() => vcpus.close());
  const client = AttachClient.connect(s.attach.address);
  s.own(() => client.close());
  await vcpus.attachAll(client, plugin.sessionId as bigint);
}

test('a process holding empty attach connections gets only its share; another VM still attaches', async (t) => {
  const s = await attachStack(t, { maxConnections: MAX_CONNECTIONS, idleMs: 60_000 });
  const { attach } = s;
  // Another process asks for more connections than the server takes, and attaches nothing.
  const said = other(s, HOLD, [attach.address, String(EMPTY_ATTACH_PER_PROCESS + MAX_CONNECTIONS)]);
  await until('the holder to have connected', () => said.includes('held'));
  // It holds no plugin session: its share is the spare connection alone.
  const share = Math.min(EMPTY_ATTACH_PER_PROCESS, SPARE_ATTACH_PER_PROCESS);
  await until(
    'the holder to be refused past its share',
    () => attach.stats.refusedConnections === EMPTY_ATTACH_PER_PROCESS + MAX_CONNECTIONS - share,
    { state: () => `${attach.connectionCount} open, ${attach.stats.refusedConnections} refused` },
  );
  assert.equal(attach.connectionCount, share);

  await attachOne(s);
  assert.equal(attach.stats.attached, 1);
});

test('a process attaching one vCPU on each of its own connections gets only its share; another VM still attaches', async (t) => {
  const s = await attachStack(t, { maxConnections: MAX_CONNECTIONS, idleMs: 60_000 });
  const { attach } = s;
  // Another process, one session of as many vCPUs as the server takes connections, each vCPU
  // attached on a connection of its own: every one it got holds a vCPU, so none is ever idle.
  const said = other(s, GREEDY, [s.stack.socket, attach.address, String(MAX_CONNECTIONS)]);
  await until('the greedy plugin to have tried every vCPU', () => said.some((l) => l.startsWith('attached')));
  const share = 1 + SPARE_ATTACH_PER_PROCESS;
  assert.deepEqual(said, [`attached ${share} refused ${MAX_CONNECTIONS - share}`]);
  assert.equal(attach.stats.refusedConnections, MAX_CONNECTIONS - share);

  await attachOne(s);
  assert.equal(attach.stats.attached, share + 1);
});
