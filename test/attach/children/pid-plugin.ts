/**
 * A plugin that says HELLO (argv: plugin socket, VM id), prints `session <id>` from its WELCOME and
 * stays connected until it is killed. Started through `sh -c 'read go; exec …'` by a test that needs
 * it to have a given PID.
 */
import { connect } from 'node:net';
import {
  CAP,
  encodeMessage,
  FrameParser,
  PLUGIN_ACCEPTS,
  PROTOCOL_VERSION,
} from '../../../protocol/index.js';

const [path, vmId] = process.argv.slice(2) as [string, string];
const sock = connect(path);
const parser = new FrameParser(
  (m) => {
    if (m.type === 'welcome') process.stdout.write(`session ${m.sessionId}\n`);
    else process.stdout.write(`${m.type}\n`);
  },
  { accept: PLUGIN_ACCEPTS },
);
sock.on('data', (c) => parser.push(c));
sock.once('connect', () =>
  sock.write(
    encodeMessage({
      type: 'hello',
      version: PROTOCOL_VERSION,
      caps: CAP.SEA_TO_USER,
      vmmPid: process.pid,
      vcpuCount: 2,
      extAbtEsrCap: 0,
      vmId,
      labels: {},
    }),
  ),
);
