/**
 * Another process trying to attach a vCPU to a session it does not own: prints the daemon's status.
 * argv: attach socket path, session id.
 */
import { createSealedStandInVcpuFd } from '../../../kvm/index.js';
import { AttachClient, AttachRefusedError } from '../../../vmm/attach-client.js';

const [path, session] = process.argv.slice(2) as [string, string];
const client = AttachClient.connect(path);
const fd = createSealedStandInVcpuFd('foreign', 4096);
try {
  await client.attach(BigInt(session), 0, fd);
  process.stdout.write('{"status":0}\n');
} catch (err) {
  process.stdout.write(
    `${JSON.stringify({ status: err instanceof AttachRefusedError ? err.status : -2 })}\n`,
  );
}
client.close();
