/**
 * The retention thread: runs each retention pass (store/prune.ts) on a connection of its own,
 * opened for the pass and closed after it, at the reader thread's lowered priority. Deleting and
 * vacuuming a large store, and the WAL checkpoints they cause, took the event loop for up to
 * ~0.5 s at a time when the pass ran there (docs/performance.md); here they cost the verdict path
 * nothing but a CPU share. Between slices it pauses as long as the slice took, so that the writer
 * thread's commits get the write lock within their busy timeout.
 */
import { existsSync } from 'node:fs';
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { thrownText } from '../errors/index.js';
import { openDatabase } from './connection.js';
import { type PruneOptions, prune, type RetentionRun } from './prune.js';
import { yieldToVerdictPath } from './thread-priority.js';

export interface RetentionData {
  kind: 'seawall-retention';
  path: string;
  /** Int32 slot 0: set to 1 (and notified) to end a pass at its next slice. */
  stop: SharedArrayBuffer;
}

export interface RetentionRequest extends PruneOptions {
  id: number;
}

export interface RetentionReply {
  id: number;
  run?: RetentionRun;
  error?: string;
}

function run(data: RetentionData, port: MessagePort): void {
  yieldToVerdictPath();
  const stop = new Int32Array(data.stop);
  const env = {
    clock: () => performance.now(),
    // Woken at once by a stop.
    pause: (ms: number) => {
      Atomics.wait(stop, 0, 0, Math.min(ms, 100));
      return undefined;
    },
    stopped: () => Atomics.load(stop, 0) !== 0,
  };
  port.on('message', async (req: RetentionRequest) => {
    try {
      // Never made here: a store removed at run time is the write-ahead layer's to make again.
      if (!existsSync(data.path)) throw new Error(`${data.path} does not exist`);
      const db = openDatabase(data.path);
      // Off the event loop, a pass may wait out the writer thread's largest commit (20,000 rows).
      db.pragma('busy_timeout = 5000');
      try {
        port.postMessage({ id: req.id, run: await prune(db, req, env) } satisfies RetentionReply);
      } finally {
        db.close();
      }
    } catch (err) {
      port.postMessage({ id: req.id, error: thrownText(err) } satisfies RetentionReply);
    }
  });
}

if (!isMainThread && (workerData as RetentionData | null)?.kind === 'seawall-retention' && parentPort)
  run(workerData as RetentionData, parentPort);
