/**
 * A plugin that connects, hands its socket to a child and exits (issue 12, item 1). Run as
 * `parent <socket> <go-file>`: connects, starts `child` with the socket as fd 3 and the same stdin/stdout,
 * prints `parent <pid> child <pid>`, and exits; the child prints `ready`. The child waits for the
 * go file to exist, then says HELLO and reports one SEA on that socket, printing the action of any
 * verdict, and `goodbye <reason>` for the daemon's GOODBYE. When the daemon ends that session (its
 * connecting process is gone), the child prints `ended`, connects again itself, says HELLO, reports one SEA and prints `verdict again <action>`,
 * and stays alive (it ignores a KILL verdict) until it is killed.
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
      [...process.execArgv, new URL(import.meta.url).pathname, 'child', path as string, goFile as string],
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
  const say = (line: string) => process.stdout.write(`${line}\n`);
  // HELLO and one SEA on `sock`, printing each verdict's action after `prefix`.
  const serve = (sock: Socket, prefix: string) => {
    const parser = new FrameParser(
      (m: Message) => {
        if (m.type === 'verdict') say(`${prefix}${m.action}`);
        if (m.type === 'goodbye') say(`goodbye ${m.reason}`);
      },
      { accept: PLUGIN_ACCEPTS },
    );
    sock.on('data', (c: Buffer) => parser.push(c));
    sock.on('error', () => {});
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
  };
  const sock = new Socket({ fd: 3, readable: true, writable: true });
  sock.once('close', () => {
    say('ended');
    const again = connect(path as string);
    again.once('connect', () => serve(again, 'verdict again '));
  });
  say('ready');
  // Told to go by a file: the test cannot write to the stdin of a parent that has exited.
  const wait = setInterval(() => {
    if (!existsSync(goFile as string)) return;
    clearInterval(wait);
    serve(sock, 'verdict ');
  }, 20);
  setInterval(() => {}, 1e6);
}
