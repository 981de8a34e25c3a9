/**
 * A test VMM process serving two VMs, each on its own 1.1 session. VM A reports one SEA exit; on
 * its KILL verdict the process prints `kill` and ends A's session by `mode` — `vm-exiting`
 * (GOODBYE VM_EXITING: the VM is gone) or `goodbye` (GOODBYE NORMAL: says nothing about the VM) —
 * prints `closed`, and keeps serving VM B until it is killed.
 * argv: plugin socket, VM A id, VM B id, mode
 */
import { CAP, GOODBYE_REASON } from '../../../protocol/index.js';
import { PluginClient } from '../../../vmm/plugin-client.js';

const [socket, vmA, vmB, mode] = process.argv.slice(2) as [string, string, string, string];
const client = (vmId: string) =>
  new PluginClient({
    socket,
    vmId,
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: 5000,
    reconnect: { initialMs: 3_600_000, maxMs: 3_600_000 },
  });
const a = client(vmA);
const b = client(vmB);
await a.connect();
await b.connect();
process.stdout.write('ready\n');
const out = await a.handleExit({
  type: 'sea',
  vcpu: 0,
  kvmFlags: 1n,
  esr: 0x92000010n,
  gva: 0n,
  gpa: 0x10000n,
});
if (out.source === 'daemon' && out.verdict.action === 3) {
  process.stdout.write('kill\n');
  await a.close(mode === 'vm-exiting' ? GOODBYE_REASON.VM_EXITING : GOODBYE_REASON.NORMAL);
  process.stdout.write('closed\n');
}
setInterval(() => {}, 1000); // VM B lives on
