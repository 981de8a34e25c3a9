// Child process for notify-held.test.ts: notifies a manager that reads nothing (its receive queue
// full), so the first send blocks in sendmsg(2); then everything a daemon sends in start-up, a
// status storm, two reloads and a stop. Reports once its event loop has turned past all of it,
// and exits once a line on stdin says the manager reads again and every notification is out.
import { createInterface } from 'node:readline';
import type { SystemdError } from '../../../systemd/errors.js';
import { createNotifier } from '../../../systemd/notify.js';

const errors: SystemdError[] = [];
const notifier = createNotifier(process.env, { onError: (err) => errors.push(err) });

notifier.send('SEAWALL_TEST_FIRST=1');
notifier.ready('up');
for (let i = 0; i < 50; i++) {
  notifier.status(`s${i}`);
  notifier.watchdogPing();
}
notifier.reloading();
notifier.ready('r1');
notifier.reloading();
notifier.ready('r2');
notifier.stopping('bye');
// A timer fires only once the loop turns: with a send blocking on it, never.
setTimeout(async () => {
  const drained = await notifier.drain(200);
  process.stdout.write(`${JSON.stringify({ drained, errors: errors.map((e) => e.code) })}\n`);
  createInterface({ input: process.stdin }).once('line', async () => {
    const sent = await notifier.drain(20_000);
    process.stdout.write(`${JSON.stringify({ drained: sent, errors: errors.map((e) => e.code) })}\n`);
    process.exit(sent ? 0 : 1);
  });
}, 0);
