/**
 * The per-process bound on attach connections that hold no vCPU (attach/attach-server.ts
 * EMPTY_ATTACH_PER_PROCESS): a process holding more empty attach connections than the server
 * takes at all does not keep another VM's plugin from attaching.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { EMPTY_ATTACH_PER_PROCESS } from '../../attach/attach-server.js';
import { CAP } from '../../protocol/index.js';
import { AttachClient, StandInVcpus } from '../../vmm/attach-client.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { PATIENT_DEADLINE_MS } from '../helpers/daemon.js';
import { spawnOwned, stopOwned } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';
import { INJECT, provider, standInAttachServer, startStack } from './stack.js';

const HOLD = new URL('./children/hold-attach.ts', import.meta.url).pathname;
const MAX_CONNECTIONS = 12;

test('a process holding empty attach connections gets only its share; another VM still attaches', async (t) => {
  const stack = await startStack(provider(() => INJECT));
  const attach = standInAttachServer(stack.dir, { maxConnections: MAX_CONNECTIONS, idleMs: 60_000 });
  attach.listen();
  stack.bus.add(attach.sink());
  const children: ChildProcess[] = [];
  const plugin = new PluginClient({
    socket: stack.socket,
    vmId: 'attaching-vm',
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  const vcpus = new StandInVcpus(1);
  const clients: AttachClient[] = [];
  // FIFO: the clients and the child go before the servers.
  t.after(async () => {
    for (const c of clients) c.close();
    vcpus.close();
    await plugin.close();
    for (const c of children) await stopOwned(c, 'the process holding attach connections');
  });
  t.after(async () => {
    attach.close();
    await stack.close();
  });

  // Another process asks for more connections than the server takes, and attaches nothing.
  const holder = spawnOwned(
    process.execPath,
    ['--import', 'tsx', HOLD, attach.address, String(EMPTY_ATTACH_PER_PROCESS + MAX_CONNECTIONS)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(holder);
  const said: string[] = [];
  createInterface({ input: holder.stdout as NodeJS.ReadableStream }).on('line', (l) => said.push(l));
  await until('the holder to have connected', () => said.includes('held'));
  await until(
    'the holder to be refused past its share',
    () => attach.stats.refusedConnections === MAX_CONNECTIONS,
    { state: () => `${attach.connectionCount} open, ${attach.stats.refusedConnections} refused` },
  );
  assert.equal(attach.connectionCount, EMPTY_ATTACH_PER_PROCESS);

  // This process's VM: a session, and its vCPU attached.
  await plugin.connect();
  const client = AttachClient.connect(attach.address);
  clients.push(client);
  await vcpus.attachAll(client, plugin.sessionId as bigint);
  assert.equal(attach.stats.attached, 1);
});
