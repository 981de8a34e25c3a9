/**
 * A test VMM that hands its plugin connection on. argv: plugin socket, VM id. As the first
 * process it connects and says HELLO (1.1), then starts a second process, in a process group
 * of its own, with the connection as its fd 3 (and its own stdout), prints `handed <pid>` and
 * exits. The second process reports a SEA exit every 100 ms (50 at most), printing `verdict <seq>
 * <action>` for each verdict, whatever it says; it exits only when the connection closes.
 */
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { RawClient, seaEvent } from '../../helpers/raw-client.js';

const [socket, vmId, role] = process.argv.slice(2) as [string, string, string?];
const say = (s: string) => process.stdout.write(`${s}\n`);

if (role !== 'serve') {
  const c = await RawClient.open(socket);
  await c.hello(vmId, { minor: 1 });
  c.socket.pause();
  const next = spawn(
    process.execPath,
    ['--import', 'tsx', process.argv[1] as string, socket, vmId, 'serve'],
    {
      stdio: ['ignore', 'inherit', 'inherit', c.socket],
      detached: true,
    },
  );
  say(`handed ${next.pid}`);
  process.exit(0);
}

const c = RawClient.over(new Socket({ fd: 3, readable: true, writable: true }));
// Gone with the connection: the daemon's end closing (the test's stack stopping) ends it too.
c.closed.then(() => process.exit(0));
for (let seq = 1; seq <= 50; seq++) {
  c.send(seaEvent(seq));
  const v = await c.waitFor('verdict', (m) => m.seq === seq);
  say(`verdict ${seq} ${v.action}`);
  await new Promise((r) => setTimeout(r, 100));
}
setInterval(() => {}, 1 << 30);
