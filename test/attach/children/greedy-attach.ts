/**
 * A plugin that takes one attach connection per vCPU: argv plugin socket, attach socket, vCPU
 * count. It says HELLO for that many vCPUs, then for each opens a connection of its own and
 * attaches that one stand-in vCPU on it (a connection holding a vCPU is never idle), prints
 * `attached <n> refused <n>` and stays until it is killed.
 */
import { CAP } from '../../../protocol/index.js';
import { AttachClient, StandInVcpus } from '../../../vmm/attach-client.js';
import { PluginClient } from '../../../vmm/plugin-client.js';

const [socket, attachSocket, count] = process.argv.slice(2) as [string, string, string];
const vcpuCount = Number(count);
const plugin = new PluginClient({ socket, vmId: 'greedy-vm', vcpuCount, caps: CAP.SEA_TO_USER });
await plugin.connect();
const session = plugin.sessionId as bigint;
const vcpus = new StandInVcpus(vcpuCount);
const clients: AttachClient[] = [];
let attached = 0;
let refused = 0;
for (let i = 0; i < vcpuCount; i++) {
  const client = AttachClient.connect(attachSocket);
  clients.push(client);
  try {
    await client.attach(session, i, vcpus.fds[i] as number);
    attached++;
  } catch {
    refused++;
  }
}
process.stdout.write(`attached ${attached} refused ${refused}\n`);
setInterval(() => {}, 1e6);
