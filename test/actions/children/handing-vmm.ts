/**
 * A test VMM that hands its plugin connection on. argv: plugin socket, VM id. As the first
 * process it connects, says HELLO (1.1), reports a SEA exit and prints its verdict, then starts a
 * second process, in a process group of its own, with the connection as its fd 3 (and its own
 * stdout), prints `handed <pid>` and exits. The second process reports a SEA exit every 100 ms
 * (50 at most), printing `verdict <seq> <action>` for each verdict, whatever it says. When the
 * connection closes it prints `closed goodbye <reason>` (or `closed without goodbye`), connects
 * again for the VM, reports one exit, prints `reconnected, verdict <seq> <action>`, and exits when
 * that connection closes. With a third argument `early`, the first process hands the connection on
 * before HELLO, and the second says HELLO once the first has exited, then goes on as above from
 * seq 1. */
import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { RawClient, seaEvent } from '../../helpers/raw-client.js';
import { until } from '../../helpers/wait.js';

const [socket, vmId, role, handedBy] = process.argv.slice(2) as [string, string, string?, string?];
const say = (s: string) => process.stdout.write(`${s}\n`);

if (role === undefined || role === 'early') {
  const c = await RawClient.open(socket);
  if (role !== 'early') {
    await c.hello(vmId, { minor: 1 });
    // Its own exit first, so that a kill of the session waits on this process when it exits.
    c.send(seaEvent(1));
    say(`verdict 1 ${(await c.waitFor('verdict')).action}`);
  }
  c.socket.pause();
  const next = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      process.argv[1] as string,
      socket,
      vmId,
      role === 'early' ? 'serve-early' : 'serve',
      String(process.pid),
    ],
    {
      stdio: ['ignore', 'inherit', 'inherit', c.socket],
      detached: true,
    },
  );
  say(`handed ${next.pid}`);
  process.exit(0);
}

const c = RawClient.over(new Socket({ fd: 3, readable: true, writable: true }));
if (role === 'serve-early') {
  // HELLO only once the process that connected is gone (this one is then no longer its child).
  await until('the connecting process to exit', () => process.ppid !== Number(handedBy));
  await c.hello(vmId, { minor: 1 });
}
// The daemon ends the session when the process that connected is gone: say how, and connect
// again for the VM under this process's own credentials, as a plugin does after any end.
c.closed.then(async () => {
  const bye = c.received.find((m) => m.type === 'goodbye');
  say(`closed ${bye && bye.type === 'goodbye' ? `goodbye ${bye.reason}` : 'without goodbye'}`);
  const again = await RawClient.open(socket);
  again.closed.then(() => process.exit(0));
  await again.hello(vmId, { minor: 1 });
  again.send(seaEvent(1));
  const v = await again.waitFor('verdict');
  say(`reconnected, verdict ${v.seq} ${v.action}`);
});
try {
  for (let seq = role === 'serve-early' ? 1 : 2; seq <= 50; seq++) {
    c.send(seaEvent(seq));
    const v = await c.waitFor('verdict', (m) => m.seq === seq);
    say(`verdict ${seq} ${v.action}`);
    await new Promise((r) => setTimeout(r, 100));
  }
} catch {
  // The connection closed while a verdict was awaited: the handler above carries on.
}
setInterval(() => {}, 1 << 30);
