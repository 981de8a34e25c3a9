/**
 * Starts the reader and retention threads, uses each once, and returns without closing either:
 * test/store/reader-client.test.ts expects this process to exit on its own.
 */
import { EventStore, Retention, StoreReader } from '../../../store/index.js';

// Nothing else holds the process: a read or a pass in progress must, an idle thread must not.
const store = new EventStore({ path: process.argv[2] as string });
const reader = new StoreReader(store);
await reader.totals();
await new Retention(store).run();
process.stdout.write(`threads started, reader running: ${reader.running}\n`);
