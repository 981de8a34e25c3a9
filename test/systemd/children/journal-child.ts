// Child process for journal.test.ts: logs the entries given as JSON on argv through a logger
// created with the options given there, and prints the chosen target and reported error codes.

import type { JournalEntry, JournalLoggerOptions } from '../../../systemd/journal.js';
import { createJournalLogger } from '../../../systemd/journal.js';

const options = JSON.parse(process.argv[2] ?? '{}') as JournalLoggerOptions;
const entries = JSON.parse(process.argv[3] ?? '[]', (_k, v) =>
  typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
) as JournalEntry[];
const codes: string[] = [];
const logger = createJournalLogger({ ...options, onError: (err) => codes.push(err.code) });
for (const entry of entries) logger.log(entry);
process.stdout.write(`${JSON.stringify({ target: logger.target, errors: codes })}\n`);
