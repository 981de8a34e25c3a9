// Child process for listen-fds.test.ts, exec'd by systemd-socket-activate: takes the passed
// sockets by name and serves the `plugin` one with node:net, answering each connection with
// what it received and what is left of the activation environment.
import { createServer } from 'node:net';
import { takeListenFds } from '../../../systemd/listen-fds.js';

const fds = takeListenFds();
const again = takeListenFds();
const fd = fds.all.find((f) => f.name === 'plugin')?.fd;
if (fd === undefined) {
  process.stderr.write(`no plugin fd in ${JSON.stringify(fds.all)}\n`);
  process.exit(2);
}
const report = JSON.stringify({
  all: fds.all,
  secondTake: again.all.length,
  env: {
    LISTEN_FDS: process.env.LISTEN_FDS,
    LISTEN_PID: process.env.LISTEN_PID,
    LISTEN_FDNAMES: process.env.LISTEN_FDNAMES,
  },
});
let served = 0;
const server = createServer((socket) => {
  served++;
  socket.end(`${report}\n`);
  if (served === 2) server.close();
});
server.listen({ fd });
