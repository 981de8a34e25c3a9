/**
 * Run inside a mount namespace whose /run/systemd/journal/socket is read only once the FIFO named
 * by argv[2] is written to (a journald stopped, then resumed): logs 2,000 per-event entries of
 * argv[3] VMs (default 1) one VM after the other, `quiet` of another VM, and then `important`
 * entries that are not per-event while nobody reads, resumes the reader, and says as one JSON line
 * whether every entry that was kept reached it. Last, an `end` entry marks the end of what the
 * reader receives. It then stays until the test ends its process group: the reader, in that
 * group, is killed when this process exits. The logger is made as the daemon makes its own.
 */
import { writeFileSync } from 'node:fs';
import { createJournalLogger } from '../../../systemd/journal.js';

const resume = process.argv[2] as string;
const floods = Number(process.argv[3] ?? 1);
const flooded = 2000;
const important = 10;
const logger = createJournalLogger({ identifier: 'seawall-flood-test', mode: 'journal' });
for (let i = 0; i < flooded; i++) {
  const vm = `flooding-${Math.floor((i * floods) / flooded)}`;
  logger.log({ message: `event ${i}`, priority: 4, perEvent: true, fields: { SEAWALL_VM: vm } });
}
// Another VM's memory errors, after the floods: they wait within the per-event half all the same.
const quiet = 20;
for (let i = 0; i < quiet; i++)
  logger.log({ message: `quiet ${i}`, priority: 4, perEvent: true, fields: { SEAWALL_VM: 'quiet' } });
for (let i = 0; i < important; i++) logger.log({ message: `kill ${i}`, priority: 3 });
writeFileSync(resume, 'go\n');
const drained = await logger.drain(20_000);
logger.log({ message: 'end', priority: 6 });
await logger.drain(20_000);
process.stdout.write(
  `${JSON.stringify({ target: logger.target, drained, important, quiet, floods, flooded })}\n`,
);
setInterval(() => {}, 60_000);
