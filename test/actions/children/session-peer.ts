/**
 * A test VMM on a raw connection, for how a session's end meets its kill. argv: plugin socket,
 * VM id, mode. It says HELLO (1.1), reports one SEA exit, and then by `mode`:
 *   send-close        — closes at once, without reading the verdict (a plugin whose deadline
 *                       passed), and stays alive;
 *   close-linger      — reads the verdict, closes, and stays alive;
 *   ignore            — reads the verdict and stays connected and alive;
 *   exiting-reconnect — reads the verdict, says GOODBYE VM_EXITING, and connects again for the
 *                       same VM id (claiming the VM went away, while it did not).
 * It prints a line at each step and never exits by itself.
 */
import { GOODBYE_REASON } from '../../../protocol/index.js';
import { RawClient, seaEvent } from '../../helpers/raw-client.js';

const [socket, vmId, mode] = process.argv.slice(2) as [string, string, string];
const say = (s: string) => process.stdout.write(`${s}\n`);
const sea = seaEvent(1);
const c = await RawClient.open(socket);
await c.hello(vmId, { minor: 1 });
c.send(sea);
if (mode === 'send-close') {
  c.destroy();
  say('closed');
} else {
  const v = await c.waitFor('verdict');
  say(`verdict ${v.action}`);
  if (mode === 'close-linger') {
    c.destroy();
    say('closed');
  } else if (mode === 'exiting-reconnect') {
    c.send({ type: 'goodbye', reason: GOODBYE_REASON.VM_EXITING });
    await c.closed;
    const again = await RawClient.open(socket);
    await again.hello(vmId, { minor: 1 });
    say('reconnected');
  }
}
setInterval(() => {}, 1 << 30);
