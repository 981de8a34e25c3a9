/**
 * Run inside a mount namespace whose /run/systemd/journal/socket is read only once the FIFO named
 * by argv[2] is written to (a journald stopped, then resumed): logs 2,000 per-event entries of one
 * VM, `quiet` of another, and then `important` entries that are not per-event while nobody reads, resumes the reader, and
 * says as one JSON line whether every entry that was kept reached it. Last, an `end` entry marks
 * the end of what the reader receives. It then stays until the test ends its process group: the
 * reader, in that group, is killed when this process exits.
 */
import { writeFileSync } from 'node:fs';
import { createJournalLogger } from '../../../systemd/journal.js';

const resume = process.argv[2] as string;
const important = 10;
const logger = createJournalLogger({ identifier: 'seawall-flood-test', mode: 'journal' });
const flood = { SEAWALL_VM: 'flooding' };
for (let i = 0; i < 2000; i++)
  logger.log({ message: `event ${i}`, priority: 4, perEvent: true, fields: flood });
// Another VM's memory errors, after the flood: they wait within the per-event half all the same.
const quiet = 20;
for (let i = 0; i < quiet; i++)
  logger.log({ message: `quiet ${i}`, priority: 4, perEvent: true, fields: { SEAWALL_VM: 'quiet' } });
for (let i = 0; i < important; i++) logger.log({ message: `kill ${i}`, priority: 3 });
writeFileSync(resume, 'go\n');
const drained = await logger.drain(20_000);
logger.log({ message: 'end', priority: 6 });
await logger.drain(20_000);
process.stdout.write(`${JSON.stringify({ target: logger.target, drained, important, quiet })}\n`);
setInterval(() => {}, 60_000);
