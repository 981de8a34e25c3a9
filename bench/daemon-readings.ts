/**
 * What the socket benchmark reads of a daemon besides its answers: its resident set with many VMs
 * connected, and the events its store holds.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ReadOnlyStore } from '../store/index.js';
import { REPLY_LEN, REPLY_TYPE, writeFrames } from './frames.js';
import { rssMb } from './proc.js';
import { type Started, track } from './servers.js';

/**
 * Holds `n` sessions open with the C client (`clientBin`, the frames written to `frames`); returns the daemon's RSS meanwhile: 2 s after the
 * handshakes (the goal's figure), and the lowest over the settleS seconds after that. V8 grows
 * its young generation for a burst of handshakes and gives the pages back only once its memory
 * reducer runs (~15–20 s later here): the first figure holds that transient, the second what the
 * sessions keep. The second is also past the writer thread's end (10 s after its last events,
 * store/write-ahead.ts `writerIdleMs`), the first is not.
 */
export async function rssWithSessions(
  clientBin: string,
  frames: string,
  settleS: number,
  d: Started,
  socket: string,
  n: number,
): Promise<{ rss: number; settled: number }> {
  writeFrames(frames, n, true, 1);
  const holder = spawn(
    clientBin,
    [socket, frames, 'hold', '0', '0', String(REPLY_TYPE.daemon), String(REPLY_LEN.daemon)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  track(holder);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: holder.stdout as NodeJS.ReadableStream }).once('line', () => resolve());
    holder.once('exit', (code) => reject(new Error(`hold client exited ${code}`)));
  });
  const pid = d.proc.pid as number;
  // Let the daemon settle (GC after 1,000 handshakes) before reading its resident set.
  await new Promise((r) => setTimeout(r, 2000));
  const rss = rssMb(pid);
  let settled = rss;
  for (let i = 0; i < settleS; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    settled = Math.min(settled, rssMb(pid));
  }
  holder.stdin?.end();
  await new Promise((r) => holder.once('exit', r));
  return { rss, settled };
}

/** The events in a stopped daemon's store, counted in the file opened read-only. */
export function storedEvents(path: string): number {
  const store = ReadOnlyStore.open(path);
  try {
    return store.queries.totals().events;
  } finally {
    store.close();
  }
}
