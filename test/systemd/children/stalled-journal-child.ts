/**
 * Run inside a mount namespace whose /run/systemd/journal/socket is a datagram socket nobody reads
 * (a journald stopped or stuck): logs 2,000 entries to it and says, as one JSON line, whether the
 * event loop kept turning meanwhile and what became of the entries. A logger that sends on the
 * event loop blocks on the 11th entry (the socket's queue is full) and never prints.
 */
import { createJournalLogger } from '../../../systemd/journal.js';

const logger = createJournalLogger({ identifier: 'seawall-stall-test', mode: 'journal' });
let turns = 0;
const ticker = setInterval(() => turns++, 1);
const start = performance.now();
for (let i = 0; i < 2000; i++) logger.log({ message: `entry ${i}`, priority: 6 });
const loggedMs = performance.now() - start;
await new Promise((resolve) => setTimeout(resolve, 100));
clearInterval(ticker);
const drained = await logger.drain(100);
process.stdout.write(`${JSON.stringify({ target: logger.target, loggedMs, turns, drained })}\n`);
// The entry in flight stays blocked in sendmsg(2) on a thread of libuv's pool, and exit(3) would
// wait for that thread: the test ends this process.
