/**
 * An attach connection handed on: run as `parent <attach socket> <fifo>`, connects, starts `child`
 * with the connection as fd 3 and the same stdout, prints `parent <pid> child <pid>` and exits.
 * The child prints `ready` once the fifo is open, reads a session id from the fifo, asks to attach a sealed stand-in as vCPU 0 of it over
 * the inherited connection, prints `{"status":N}` (0 when attached) and exits.
 */
import { spawn } from 'node:child_process';
import { constants, createReadStream, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connectSeqpacket, createSealedStandInVcpuFd } from '../../../kvm/index.js';
import { AttachClient, AttachRefusedError } from '../../../vmm/attach-client.js';

const [mode, path, fifo] = process.argv.slice(2) as [string, string, string];

if (mode === 'parent') {
  const fd = connectSeqpacket(path);
  const child = spawn(
    process.execPath,
    [...process.execArgv, new URL(import.meta.url).pathname, 'child', '', fifo],
    {
      stdio: ['ignore', 'inherit', 'inherit', fd],
      detached: true,
    },
  );
  child.once('spawn', () =>
    process.stdout.write(`parent ${process.pid} child ${child.pid}\n`, () => process.exit(0)),
  );
} else {
  // Opened read-write, the fifo does not wait for its writer, who waits for `ready`.
  const input = createReadStream('', { fd: openSync(fifo, constants.O_RDWR) });
  process.stdout.write('ready\n');
  const line = await new Promise<string>((resolve) => createInterface({ input }).once('line', resolve));
  // The client of a connection this process did not make: what a plugin's forked helper would hold.
  const client = new (AttachClient as unknown as new (fd: number, replyTimeoutMs: number) => AttachClient)(
    3,
    10_000,
  );
  const vcpu = createSealedStandInVcpuFd('handed-on', 8192);
  let status = 0;
  try {
    await client.attach(BigInt(line.trim()), 0, vcpu);
  } catch (err) {
    status = err instanceof AttachRefusedError ? err.status : -2;
  }
  process.stdout.write(`${JSON.stringify({ status })}\n`, () => process.exit(0));
}
