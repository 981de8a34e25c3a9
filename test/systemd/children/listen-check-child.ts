// Child process for listen-fds.test.ts, exec'd by systemd-socket-activate: takes the passed
// sockets and prints what became of them, as one JSON line, then exits.
import { takeListenFds } from '../../../systemd/listen-fds.js';

try {
  process.stdout.write(`${JSON.stringify({ all: takeListenFds().all })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
}
