/**
 * Baseline for the socket benchmark: a Node Unix-socket server that parses every frame with the
 * daemon's own FrameParser and answers it with the frame re-encoded — the floor for any Node
 * server that speaks the protocol, without a policy, a store or metrics.
 */
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { DAEMON_ACCEPTS, encodeMessage, FrameParser } from '../protocol/index.js';

const path = process.argv[2];
if (!path) throw new Error('usage: node-echo SOCKET_PATH');
try {
  unlinkSync(path);
} catch {
  // not there
}
createServer((s) => {
  const parser = new FrameParser((m) => s.write(encodeMessage(m)), { accept: DAEMON_ACCEPTS });
  s.on('data', (chunk: Buffer) => {
    try {
      parser.push(chunk);
    } catch {
      s.destroy();
    }
  });
  s.on('error', () => {});
}).listen(path, () => process.stdout.write('ready\n'));
