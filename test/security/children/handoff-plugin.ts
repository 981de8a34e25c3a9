/**
 * A plugin that connects, hands its socket to a child and exits (issue 12, item 1). Run as
 * `parent <socket> <go-file>`: connects, starts `child` with the socket as fd 3 and the same stdin/stdout,
 * prints `parent <pid> child <pid>`, and exits; the child prints `ready`. The child waits for the go file to exist,
 * then says HELLO and reports one SEA, prints the verdict's action, and stays alive (it ignores a
 * KILL verdict) until it is killed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import {
  CAP,
  encodeMessage,
  FrameParser,
  type Message,
  PLUGIN_ACCEPTS,
  PROTOCOL_VERSION,
} from '../../../protocol/index.js';
import { seaFrame } from '../../../vmm/sample-events.js';

const [mode, path, goFile] = process.argv.slice(2);

if (mode === 'parent') {
  const sock = connect(path as string);
  sock.once('connect', () => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, new URL(import.meta.url).pathname, 'child', '', goFile as string],
      {
        stdio: ['inherit', 'inherit', 'inherit', sock],
        detached: true,
      },
    );
    // The child has its own copy of the socket from here on: say who we were and go.
    child.once('spawn', () =>
      process.stdout.write(`parent ${process.pid} child ${child.pid}\n`, () => process.exit(0)),
    );
  });
} else {
  const sock = new Socket({ fd: 3, readable: true, writable: true });
  process.stdout.write('ready\n');
  const parser = new FrameParser(
    (m: Message) => {
      if (m.type === 'verdict') process.stdout.write(`verdict ${m.action}\n`);
    },
    { accept: PLUGIN_ACCEPTS },
  );
  sock.on('data', (c: Buffer) => parser.push(c));
  sock.on('error', () => {});
  // Told to go by a file: the test cannot write to the stdin of a parent that has exited.
  const wait = setInterval(() => {
    if (!existsSync(goFile as string)) return;
    clearInterval(wait);
    sock.write(
      encodeMessage({
        type: 'hello',
        version: PROTOCOL_VERSION,
        caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
        vmmPid: process.pid,
        vcpuCount: 1,
        extAbtEsrCap: 0,
        vmId: 'handoff-vm',
        labels: {},
      }),
    );
    sock.write(seaFrame(1, { timeNs: 1n }));
  }, 20);
  setInterval(() => {}, 1e6);
}
