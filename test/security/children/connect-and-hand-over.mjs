// Connects to the plugin socket argv[2] argv[3] times, hands each connected socket to the parent
// over the IPC channel, and exits: the connections are then the parent's, made by a process of
// their own. test/security/peers.ts opens its many peers this way, a few per process, as an
// attacker with many processes would. Plain JavaScript: started many times, it must start fast.
import { connect } from 'node:net';

const [path, count] = process.argv.slice(2);

/** One connection, retried while the daemon's accept backlog is full (EAGAIN on a Unix socket). */
async function connectOne() {
  for (;;) {
    const s = connect(path);
    const err = await new Promise((resolve) => {
      s.once('connect', () => resolve(null));
      s.once('error', resolve);
    });
    if (err === null) return s;
    s.destroy();
    if (err.code !== 'EAGAIN') throw err;
    await new Promise((r) => setTimeout(r, 10)); // the backlog drains as the daemon accepts
  }
}

// The parent acknowledges each socket before the next can go: keep listening for that (the IPC
// channel keeps the process alive only while something listens on it).
process.channel.ref();
for (let i = 0; i < Number(count); i++) {
  const s = await connectOne();
  s.pause();
  // A connection the daemon has closed already (a short HELLO timeout) cannot be handed over:
  // the parent is told it is gone instead.
  const sent = await new Promise((resolve) => {
    s.once('close', () => resolve(false));
    process.send('socket', s, (err) => resolve(!err));
  });
  if (!sent) await new Promise((resolve) => process.send('gone', resolve));
}
process.disconnect();
