// Child process for notify.test.ts: drives notify.ts and watchdog.ts from commands on stdin, so
// the test decides when each state is sent while the receiver observes the real socket.
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { SystemdError } from '../../../systemd/errors.js';
import { createNotifier } from '../../../systemd/notify.js';
import { createWatchdog } from '../../../systemd/watchdog.js';

const errors: SystemdError[] = [];
const notifier = createNotifier(process.env, { onError: (err) => errors.push(err) });
const watchdog = createWatchdog(notifier);

function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {}
}

const commands: Record<string, (arg: string) => void> = {
  info: () =>
    notifier.status(
      `enabled=${notifier.enabled} watchdog=${watchdog.enabled} interval=${watchdog.pingIntervalMs} errors=${errors.map((e) => e.code).join(',')}`,
    ),
  start: () => watchdog.start(),
  ready: (arg) => notifier.ready(arg || undefined),
  reloading: () => notifier.reloading(),
  // STATUS markers are queued around the busy loop, in order, so the receiver can bound it exactly.
  // Sent raw, as states: through status() a newer STATUS= replaces a queued one, and on a busy
  // machine 'blocking' still waited behind a ping in flight when 'unblocked' replaced it.
  block: (arg) => {
    notifier.send('STATUS=blocking');
    busy(Number(arg));
    notifier.send('STATUS=unblocked');
  },
  // A failed system call wrapped the way seawall's errors wrap one: ERRNO= comes from the cause.
  failed: (arg) => {
    try {
      readdirSync(arg);
    } catch (cause) {
      notifier.failed(`cannot read\n${arg}`, new Error('wrapped', { cause }));
    }
  },
  'failed-plain': () => notifier.failed('no system call', new Error('plain')),
  stop: () => {
    watchdog.stop();
    notifier.stopping('bye');
    // Sends are asynchronous: the process exits once STOPPING=1 is out.
    void notifier.drain(10_000).then((sent) => process.exit(sent ? 0 : 1));
  },
};

createInterface({ input: process.stdin }).on('line', (line) => {
  const [name = '', arg = ''] = line.split(' ');
  commands[name]?.(arg);
  process.stdout.write(`done ${name}\n`);
});
