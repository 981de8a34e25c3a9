/** Baseline for the verdict-latency benchmark: a Node Unix-socket echo server (one write per chunk). */
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:net';

const path = process.argv[2];
if (!path) throw new Error('usage: node-echo SOCKET_PATH');
try {
  unlinkSync(path);
} catch {
  // not there
}
createServer((s) => {
  s.on('data', (chunk) => s.write(chunk));
  s.on('error', () => {});
}).listen(path, () => process.stdout.write('ready\n'));
