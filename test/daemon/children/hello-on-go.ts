/**
 * A second plugin process for test/daemon/pre-hello.test.ts. Run as `<socket> <vm id>`: prints
 * `ready`, waits for a line on stdin, then connects, says HELLO, prints the first answer
 * (`welcome`, or `reject <code> <message>`) and stays connected until it is killed.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import {
  CAP,
  encodeMessage,
  FrameParser,
  type Message,
  PLUGIN_ACCEPTS,
  PROTOCOL_VERSION,
} from '../../../protocol/index.js';

const [path, vmId] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
lines.once('line', () => {
  const s = connect(path as string);
  let said = false;
  const say = (line: string) => {
    if (said) return;
    said = true;
    process.stdout.write(`${line}\n`);
  };
  const parser = new FrameParser(
    (m: Message) => say(m.type === 'reject' ? `reject ${m.code} ${m.message}` : m.type),
    { accept: PLUGIN_ACCEPTS },
  );
  s.on('data', (c) => parser.push(c));
  s.on('error', (e) => say(`error ${(e as NodeJS.ErrnoException).code}`));
  s.on('close', () => say('closed'));
  s.once('connect', () =>
    s.write(
      encodeMessage({
        type: 'hello',
        version: PROTOCOL_VERSION,
        caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
        vmmPid: process.pid,
        vcpuCount: 1,
        extAbtEsrCap: 0,
        vmId: vmId as string,
        labels: {},
      }),
    ),
  );
});
process.stdout.write('ready\n');
