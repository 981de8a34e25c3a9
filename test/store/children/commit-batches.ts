/**
 * Commits batches of decided events to the store at argv[2] until killed, as the writer thread does
 * in a storm; says "writing" once the first batch is committed.
 */
import { setImmediate } from 'node:timers/promises';
import { EventStore } from '../../../store/index.js';
import { record, session } from '../records.js';

const store = new EventStore({ path: process.argv[2] as string, bootId: 'writer' });
const s = session('vm-storm', 9n);
let seq = 0;
for (;;) {
  const batch = [];
  for (let i = 0; i < 200; i++) batch.push(record({ session: s, seq: ++seq, timeMs: Date.now() }));
  store.append(batch);
  if (seq === 200) process.stdout.write('writing\n');
  await setImmediate();
}
