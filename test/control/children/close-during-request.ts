/**
 * A control server closed, as at a daemon's stop, while a request of a connected peer still runs;
 * the request ends once the connection is gone. Prints `slot given back` when the server counts
 * the connection no more, and is then expected to exit by itself: a deadline left behind for an
 * answer nobody will drain (10 minutes here) would keep it alive.
 */
import { connect } from 'node:net';
import { until, WAIT_MS, within } from '../../helpers/wait.js';
import { startControl } from '../fixture.js';

/** Open pipe and socket handles: the server's end of the connection is one of them. */
const pipes = () => process.getActiveResourcesInfo().filter((r) => r === 'PipeWrap').length;
process.stdout.write('');
process.stderr.write('');
const before = pipes();

const f = await startControl({ writeTimeoutMs: 600_000, idleTimeoutMs: 600_000 });
let finish!: () => void;
f.reloadGate = new Promise<void>((resolve) => {
  finish = resolve;
});
const peer = connect(f.socket);
peer.on('error', () => {});
await within('a connection to the control socket', new Promise((resolve) => peer.once('connect', resolve)));
peer.write('{"id":1,"cmd":"reload"}\n');
await until('the reload to start', () => f.reloads === 1);
await f.close();
peer.destroy();
// Every handle of the connection closed, and so its 'close' emitted, before the request ends: the
// order of a stop that comes while a request is answered by another thread.
await until('the connection to be closed at both ends', () => pipes() <= before, {
  state: () => `${pipes()} pipe handles open, ${before} before the server`,
});
if (f.server.connectionCount !== 1) throw new Error('the running request should hold its slot');
finish();
await until('the slot to be given back', () => f.server.connectionCount === 0, { timeoutMs: WAIT_MS / 2 });
console.log('slot given back');
