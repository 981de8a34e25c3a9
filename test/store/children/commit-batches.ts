/**
 * For each line read on stdin, commits ten batches of 100 decided events to the store at argv[2],
 * a turn of the event loop apart, as the writer thread does in a storm, and says "committed N";
 * says "ready" first.
 */
import { createInterface } from 'node:readline';
import { setImmediate } from 'node:timers/promises';
import { EventStore } from '../../../store/index.js';
import { record, session } from '../records.js';

const store = new EventStore({ path: process.argv[2] as string, bootId: 'writer' });
const s = session('vm-storm', 9n);
let seq = 0;
process.stdout.write('ready\n');
for await (const _ of createInterface({ input: process.stdin })) {
  for (let b = 0; b < 10; b++) {
    const batch = [];
    for (let i = 0; i < 100; i++) batch.push(record({ session: s, seq: ++seq, timeMs: Date.now() }));
    store.append(batch);
    await setImmediate();
  }
  process.stdout.write(`committed ${seq}\n`);
}
