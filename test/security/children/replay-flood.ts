/**
 * A hostile VMM for test/security/verdict-path.test.ts: one session that floods the daemon with
 * replays. It runs in a process of its own, as another VM's VMM would, so that building and
 * sending 30,000 frames costs the probe VM's process (the test's) nothing.
 *
 * Usage: replay-flood.ts SOCKET COUNT. Says HELLO and prints "ready" once welcomed and every frame
 * is encoded; on "go" (a line on stdin) it sends COUNT replays, then a HEARTBEAT, and prints
 * "done" when the echo arrives (the daemon echoes it behind the session's queued replays, so by
 * then every replay is recorded). It exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { seaFrame } from '../../../vmm/sample-events.js';
import { RawClient } from '../../helpers/raw-client.js';

const [socket, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!socket || !Number.isInteger(count) || count <= 0) {
  process.stderr.write('usage: replay-flood.ts SOCKET COUNT\n');
  process.exit(2);
}

const chunks: Buffer[] = [];
for (let first = 1; first <= count; first += 1000) {
  const frames: Buffer[] = [];
  for (let seq = first; seq < first + 1000 && seq <= count; seq++) {
    frames.push(
      seaFrame(seq, { timeNs: BigInt(seq), replay: true, fallbackAction: 1, gpa: BigInt(seq) << 12n }),
    );
  }
  chunks.push(Buffer.concat(frames));
}

const client = await RawClient.open(socket);
await client.hello('flood-vm');
process.stdout.write('ready\n');

const input = createInterface({ input: process.stdin });
input.on('close', () => {
  client.destroy();
  process.exit(0);
});
input.on('line', async (line) => {
  if (line.trim() !== 'go') return;
  for (const chunk of chunks) {
    client.send(chunk);
    await new Promise((r) => setImmediate(r));
  }
  client.send({ type: 'heartbeat', nonce: 7n });
  await client.waitFor('heartbeat', (m) => m.nonce === 7n);
  process.stdout.write('done\n');
});
