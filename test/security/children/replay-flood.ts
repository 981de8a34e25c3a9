/**
 * A hostile VMM for test/security/verdict-path.test.ts: one session that floods the daemon with
 * replays. It runs in a process of its own, as another VM's VMM would, so that building and
 * sending the frames costs the probe VM's process (the test's) nothing.
 *
 * Usage: replay-flood.ts SOCKET MIN_COUNT RATE. Says HELLO and prints "ready" once welcomed. On
 * "go" (a line on stdin) it sends replays with fresh seqs at RATE per second (in chunks of 500,
 * waiting for the socket to drain when the daemon stops reading) until it has sent MIN_COUNT and
 * has been told "stop"; then a HEARTBEAT, and it prints "done N" (N replays sent) when the echo
 * arrives (the daemon echoes it behind the session's queued replays, so by then every replay is
 * recorded). It exits when stdin closes.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { seaFrame } from '../../../vmm/sample-events.js';
import { RawClient } from '../../helpers/raw-client.js';

const CHUNK = 500;
const [socket, countArg, rateArg] = process.argv.slice(2);
const minCount = Number(countArg);
const rate = Number(rateArg);
if (!socket || !Number.isInteger(minCount) || minCount <= 0 || !(rate > 0)) {
  process.stderr.write('usage: replay-flood.ts SOCKET MIN_COUNT RATE\n');
  process.exit(2);
}

function chunk(first: number): Buffer {
  const frames: Buffer[] = [];
  for (let seq = first; seq < first + CHUNK; seq++) {
    frames.push(
      seaFrame(seq, { timeNs: BigInt(seq), replay: true, fallbackAction: 1, gpa: BigInt(seq) << 12n }),
    );
  }
  return Buffer.concat(frames);
}

const client = await RawClient.open(socket);
await client.hello('flood-vm');
process.stdout.write('ready\n');

let stopped = false;
const input = createInterface({ input: process.stdin });
input.on('close', () => {
  client.destroy();
  process.exit(0);
});
input.on('line', async (line) => {
  if (line.trim() === 'stop') stopped = true;
  if (line.trim() !== 'go') return;
  const start = performance.now();
  let sent = 0;
  while (sent < minCount || !stopped) {
    // On schedule: chunk k leaves k·CHUNK/RATE seconds after the start, however long sending took.
    const due = start + (sent / rate) * 1000 - performance.now();
    if (due > 0) await sleep(due);
    const writable = client.socket.write(chunk(sent + 1));
    sent += CHUNK;
    if (!writable) await once(client.socket, 'drain');
  }
  client.send({ type: 'heartbeat', nonce: 7n });
  await client.waitFor('heartbeat', (m) => m.nonce === 7n);
  process.stdout.write(`done ${sent}\n`);
});
