/**
 * The writer thread: a `worker_threads` worker that owns the event inserts, so SQLite's ~5 µs per
 * row no longer runs on the event loop that answers vCPUs. It has its own connection to the same
 * file (WAL: the main thread's reads and its few other writes go on beside it).
 *
 * The main thread hands it segments (write-ahead files already renamed away from the append path,
 * store/segments.ts) in order; for each one the thread inserts the rows and the APPLIED
 * results in one transaction, unlinks the segment once committed, acknowledges on the port, and
 * then publishes the segment's number in the shared counter and notifies it — so a main thread
 * blocked in `Atomics.wait` finds the acknowledgement already queued when it wakes.
 */
import { isMainThread, type MessagePort, workerData } from 'node:worker_threads';
import { openDatabase } from './connection.js';
import { type AppliedUpdate, eventWriter } from './inserts.js';
import { readRows, removeSegment } from './segments.js';

/** What the main thread starts the worker with. */
export interface WriterData {
  kind: 'seawall-writer';
  path: string;
  bootId: string;
  port: MessagePort;
  /** Int32 slots: see `Slot`. */
  shared: SharedArrayBuffer;
}

/** Indexes into the shared Int32Array. */
export const Slot = {
  /** The number of the last segment processed (committed or failed). */
  DONE: 0,
  /** 1 once the worker's connection is closed (after `close`), 2 if it could not open. */
  CLOSED: 1,
} as const;

/** Main → worker. A segment without a file carries only APPLIED results. */
export type WriterRequest =
  | { type: 'segment'; id: number; file: string | null; applied: AppliedUpdate[] }
  | { type: 'close' };

/** Worker → main, one per segment. */
export interface WriterAck {
  id: number;
  /** null when committed; else the failure's message (the segment is kept for a retry). */
  error: string | null;
}

function run(data: WriterData): void {
  // Not niced, unlike the reader (store/thread-priority.ts): past maxInFlight the verdict path
  // waits for this thread, so starving it behind busy vCPUs would stall verdicts, not spare them.
  const { port } = data;
  const shared = new Int32Array(data.shared);
  const publish = (slot: number, value: number) => {
    Atomics.store(shared, slot, value);
    Atomics.notify(shared, slot);
  };
  let db: ReturnType<typeof openDatabase>;
  try {
    db = openDatabase(data.path);
  } catch (err) {
    // The main thread sees CLOSED = 2 and commits on its own connection from then on.
    port.postMessage({ id: 0, error: (err as Error).message } satisfies WriterAck);
    publish(Slot.CLOSED, 2);
    port.close();
    return;
  }
  const write = eventWriter(db, data.bootId);
  port.on('message', (m: WriterRequest) => {
    if (m.type === 'close') {
      db.close();
      publish(Slot.CLOSED, 1);
      port.close();
      return;
    }
    let error: string | null = null;
    try {
      write(m.file ? readRows(m.file) : [], m.applied);
      if (m.file) removeSegment(m.file);
    } catch (err) {
      error = (err as Error).message;
    }
    port.postMessage({ id: m.id, error } satisfies WriterAck);
    publish(Slot.DONE, m.id);
  });
}

// Imported by the main thread too (for the types and `Slot`): run only as the writer worker.
if (!isMainThread && (workerData as WriterData | null)?.kind === 'seawall-writer')
  run(workerData as WriterData);
