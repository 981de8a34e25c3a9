/**
 * A test VMM: connects with the reference PluginClient, reports `events` SEA exits (one per vCPU,
 * all at once) and prints each verdict's action. On a KILL verdict it prints `kill <graceMs>` and then, by `mode`:
 *   ignore — keeps running (the daemon must enforce);  exit — exits at once by itself (code 0).
 * argv: plugin socket, VM id, mode, events, [vmmPid to claim in HELLO]
 */
import { CAP } from '../../../protocol/index.js';
import { PluginClient } from '../../../vmm/plugin-client.js';

const [socket, vmId, mode, events, claimPid] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string?,
];
const client = new PluginClient({
  socket,
  vmId,
  // The VM id's first word is its tier label (policies match labels, not ids).
  labels: { tier: vmId.split('-')[0] as string },
  vcpuCount: Number(events),
  caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
  // Not a fallback test: a loaded machine's slowness must not turn a KILL into a fallback.
  deadlineMs: 20_000,
  ...(claimPid ? { vmmPid: Number(claimPid) } : {}),
});
client.on('kill', ({ graceMs }: { graceMs: number }) => {
  process.stdout.write(`kill ${graceMs}\n`);
  if (mode === 'exit') process.exit(0);
});
await client.connect();
process.stdout.write('ready\n');
// All at once, one per vCPU: every exit is reported before any verdict is read, so all of them
// are decided within the grace of the first KILL, however slow the machine.
await Promise.all(
  Array.from({ length: Number(events) }, async (_, i) => {
    const out = await client.handleExit({
      type: 'sea',
      vcpu: i,
      kvmFlags: 1n,
      esr: (0x24n << 26n) | (1n << 25n) | 0x10n,
      gva: 0n,
      gpa: BigInt(0x10000 + i * 0x1000),
    });
    process.stdout.write(`verdict ${out.source} ${out.verdict.action}\n`);
  }),
);
// Keep running whatever the verdict said, like a VMM that ignores it.
setInterval(() => {}, 1 << 30);
