/**
 * The writer thread: a `worker_threads` worker that owns the event inserts, so SQLite's 12–25 µs
 * per row (bench/store-rows.ts) no longer runs on the event loop that answers vCPUs. It has its
 * own connection to the same file (WAL: the main thread's reads and its few other writes go on
 * beside it).
 *
 * The main thread hands it segments (write-ahead files already renamed away from the append path,
 * store/segments.ts) in order; the thread inserts their rows, APPLIED results and session rows, unlinks each
 * segment once committed, acknowledges each on the port, and then publishes the last segment's
 * number in the shared counter and notifies it — so a main thread blocked in `Atomics.wait` finds
 * the acknowledgements already queued when it wakes.
 *
 * Segments already queued behind the one it is woken for are committed with it, in one
 * transaction (up to `MERGE_ROWS` rows). A commit writes every page it dirtied to the WAL once,
 * and a storm's rows share their index pages, so a thread that has fallen behind catches up at a
 * lower cost per row instead of paying a commit per 20 ms segment. Should the merged transaction
 * fail, its segments are committed one by one, so that only the segment at fault is kept — but
 * for a lock another connection holds, which would fail each of them after the busy timeout.
 */
import { isMainThread, type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { AUTOCHECKPOINT_PAGES, openDatabase } from './connection.js';
import { eventWriter } from './inserts.js';
import type { EventValues } from './rows.js';
import { type Damage, readRows, retire } from './segments.js';
import { threadId } from './thread-priority.js';
import type { WrittenAhead } from './update-lines.js';
import type { StoreUpdate } from './updates.js';

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
  /** Transactions committed: fewer than segments when queued segments were merged. */
  COMMITS: 2,
  /** The thread's id (its /proc/thread-self), once it runs: the main thread sets its policy. */
  TID: 3,
  /** Bumped by the main thread with each message it posts: what the thread waits on. */
  POSTED: 4,
  /** 1 while the thread waits with no timeout: the main thread then notifies POSTED. */
  SLEEPING: 5,
  /** Checkpoints the thread ran itself (`CHECKPOINT_ROWS`), not SQLite's own past the bound. */
  CHECKPOINTS: 6,
} as const;

/**
 * How long the thread waits for a message before it looks again, and how many such waits it makes
 * before it waits without a timeout (1 s of nothing posted): an idle daemon's thread sleeps.
 */
export const POLL_MS = 20;
const POLLS = 50;

/** Main → worker. A segment without a file carries only updates (APPLIED results, session rows); `rows` counts the file's. */
export type WriterRequest = SegmentRequest | { type: 'close' };
export interface SegmentRequest {
  type: 'segment';
  id: number;
  file: string | null;
  rows: number;
  /** APPLIED results and session rows, written after the rows, in order. */
  updates: StoreUpdate[];
  /**
   * How many of them are not in `updates` but in the file, as its update lines
   * (store/update-lines.ts): read with its rows instead of copied through the port, which cost the
   * event loop ~0.2 µs an APPLIED result (a segment's whole array at once). A file that holds
   * another count, or another boot's, fails the segment, which is retried with them from memory.
   */
  updatesInFile: number;
}

/** A segment's rows and updates, read from its file, with its request. */
interface Part {
  rows: EventValues[];
  updates: StoreUpdate[];
  seg: SegmentRequest;
  /** What of its file could not be read, if anything (store/segments.ts `readRows`). */
  damage: Damage | null;
}

/** How long the thread's commits wait for the write lock (the event loop's connection: 250 ms). */
export const WRITER_BUSY_TIMEOUT_MS = 2000;

/** Rows past which no further queued segment joins a transaction (a bound on the thread's memory). */
export const MERGE_ROWS = 20_000;

/**
 * When the thread checkpoints the WAL (copies its pages into the database file). SQLite does it
 * inside the commit that takes the WAL past `wal_autocheckpoint` pages (1,000 by default), so in a
 * storm every ~1,000 pages a commit also copied them, at the CPU the thread shares with the
 * verdict path and the vCPUs. Instead the thread checkpoints when nothing is posted to it (the
 * event loop has then put it in SCHED_IDLE, store/write-ahead.ts), once it has committed this many
 * rows and updates since its last checkpoint (a storm's 20,000 rows make ~2,000–3,000 pages), and
 * before it sleeps (a second without a post) if it committed any. SQLite's own checkpoint comes only
 * past `AUTOCHECKPOINT_PAGES` (store/connection.ts). Power loss, not kill -9, can
 * lose what is not yet checkpointed or written back by the kernel (synchronous=NORMAL,
 * store/event-store.ts).
 */
export const CHECKPOINT_ROWS = 20_000;

/** Worker → main, one per segment. */
export interface WriterAck {
  id: number;
  /** null when committed; else the failure's message (the segment is kept for a retry). */
  error: string | null;
  /** Rows read from the segment's file and committed (0 when it had none, or was gone). */
  rows?: number;
  /** Its file was damaged, and is kept: what to tell the operator (store/segments.ts `retire`). */
  damage?: string;
}

function run(data: WriterData): void {
  // Not niced, unlike the reader (store/thread-priority.ts): past maxInFlight the verdict path
  // waits for this thread, so starving it behind busy vCPUs would stall verdicts, not spare them.
  // The main thread moves it in and out of SCHED_IDLE instead (store/write-ahead.ts).
  const { port } = data;
  const shared = new Int32Array(data.shared);
  const publish = (slot: number, value: number) => {
    Atomics.store(shared, slot, value);
    Atomics.notify(shared, slot);
  };
  const tid = threadId();
  if (tid !== null) publish(Slot.TID, tid);
  let db: ReturnType<typeof openDatabase>;
  try {
    db = openDatabase(data.path, AUTOCHECKPOINT_PAGES);
  } catch (err) {
    // The main thread sees CLOSED = 2 and commits on its own connection from then on.
    port.postMessage({ id: 0, error: (err as Error).message } satisfies WriterAck);
    publish(Slot.CLOSED, 2);
    port.close();
    return;
  }
  // Off the event loop, a commit may wait for the write lock as long as a retention slice can hold
  // it: on a host whose CPUs are busy, the retention thread (niced) may be descheduled inside a
  // slice for far longer than the event loop's 250 ms, and a commit that gave up then was a store
  // fault — an error logged and counted, the critical alert — for nothing but a wait. The
  // transactions below begin IMMEDIATE, as the event writer's own do (store/inserts.ts): a
  // deferred one would fail at once rather than wait.
  db.pragma(`busy_timeout = ${WRITER_BUSY_TIMEOUT_MS}`);
  /** Rows and updates committed since the thread's last checkpoint. */
  let uncheckpointed = 0;
  const checkpoint = () => {
    uncheckpointed = 0;
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
      Atomics.add(shared, Slot.CHECKPOINTS, 1);
    } catch {
      // Nothing stored changes: the WAL keeps its pages for the next checkpoint, and a disk at
      // fault fails the next commit, which reports it.
    }
  };
  const write = eventWriter(db, data.bootId);
  // One commit for all of them.
  const writeAll = db.transaction((parts: Part[]) => {
    for (const { rows, updates } of parts) write.within(rows, updates);
  });
  const closeNow = () => {
    db.close();
    publish(Slot.CLOSED, 1);
    port.close();
  };
  // The thread takes its messages off the port itself, waiting on POSTED rather than in its
  // event loop's epoll: a post then wakes no thread on another, idle vCPU (~50 µs of the event
  // loop's time per segment here, against ~4 µs), and the thread sees it within POLL_MS — at once
  // when the main thread waits for it (reads, backpressure, close notify POSTED).
  let seen = Atomics.load(shared, Slot.POSTED);
  let polls = 0;
  for (;;) {
    const first = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
    if (first === undefined) {
      if (uncheckpointed >= CHECKPOINT_ROWS || (uncheckpointed > 0 && polls === POLLS)) {
        checkpoint();
        continue;
      }
      if (polls < POLLS) {
        polls++;
        Atomics.wait(shared, Slot.POSTED, seen, POLL_MS);
      } else {
        // Set before the wait, which returns at once if a post came since `seen` was read.
        Atomics.store(shared, Slot.SLEEPING, 1);
        Atomics.wait(shared, Slot.POSTED, seen);
        Atomics.store(shared, Slot.SLEEPING, 0);
      }
      seen = Atomics.load(shared, Slot.POSTED);
      continue;
    }
    polls = 0;
    if (!handle(first)) return;
  }

  /** Commits the segment and those queued behind it; false once the thread has closed. */
  function handle(first: WriterRequest): boolean {
    if (first.type === 'close') {
      closeNow();
      return false;
    }
    // The segment woken for, and those queued behind it up to MERGE_ROWS rows.
    const batch: SegmentRequest[] = [first];
    let rows = first.rows;
    let close = false;
    while (rows < MERGE_ROWS) {
      const next = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
      if (next === undefined) break;
      if (next.type === 'close') {
        close = true;
        break;
      }
      batch.push(next);
      rows += next.rows;
    }
    const read = new Map<number, number>();
    const damaged = new Map<number, string>();
    const errors = commit(batch, read, damaged);
    for (const seg of batch)
      port.postMessage({
        id: seg.id,
        error: errors.get(seg.id) ?? null,
        rows: read.get(seg.id) ?? 0,
        damage: damaged.get(seg.id),
      } satisfies WriterAck);
    publish(Slot.DONE, (batch[batch.length - 1] as SegmentRequest).id);
    if (close) closeNow();
    return !close;
  }

  /** The updates a segment's file holds for it: all of them, of this boot, or it fails. */
  function updatesOf(seg: SegmentRequest, written: WrittenAhead[]): StoreUpdate[] {
    const ours = written.filter((w) => w.bootId === data.bootId);
    if (ours.length !== seg.updatesInFile || ours.length !== written.length)
      throw new Error(`${seg.file} holds ${written.length} updates, ${seg.updatesInFile} expected`);
    return ours.map((w) => w.update);
  }

  /**
   * Commits the batch; returns the failures' messages by segment (their files are kept), and sets
   * in `read` how many rows each segment's file held, in `damaged` what a damaged file was kept as.
   */
  function commit(
    batch: SegmentRequest[],
    read: Map<number, number>,
    damaged: Map<number, string>,
  ): Map<number, string> {
    const errors = new Map<number, string>();
    const fail = (seg: SegmentRequest, err: unknown) => errors.set(seg.id, (err as Error).message);
    const parts: Part[] = [];
    for (const seg of batch) {
      try {
        const written: WrittenAhead[] = [];
        const { rows, damage } = seg.file
          ? readRows(seg.file, seg.updatesInFile > 0 ? written : undefined)
          : { rows: [], damage: null };
        read.set(seg.id, rows.length);
        const updates = seg.updatesInFile > 0 ? updatesOf(seg, written) : seg.updates;
        parts.push({ rows, updates, seg, damage });
      } catch (err) {
        fail(seg, err);
      }
    }
    for (const { seg, damage } of commitParts(parts, fail)) {
      try {
        const told = seg.file ? retire(seg.file, damage) : null;
        if (told !== null) damaged.set(seg.id, told);
      } catch (err) {
        fail(seg, err);
      }
    }
    return errors;
  }

  /** The parts committed: all of them in one transaction, or, if that fails, each on its own. */
  function commitParts(parts: Part[], fail: (seg: SegmentRequest, err: unknown) => void): Part[] {
    // Every segment of the batch failed to be read: no transaction, and none counted.
    if (parts.length === 0) return [];
    try {
      writeAll.immediate(parts);
      Atomics.add(shared, Slot.COMMITS, 1);
      for (const part of parts) uncheckpointed += part.rows.length + part.updates.length;
      return parts;
    } catch (err) {
      // The lock another connection holds (SQLITE_BUSY, after the busy timeout) is no segment's
      // fault: one by one, each would wait the timeout out again before the first failure is told.
      if (parts.length === 1 || isBusy(err)) {
        for (const part of parts) fail(part.seg, err);
        return [];
      }
    }
    // The inserts are idempotent and the failed transaction left nothing behind.
    return parts.filter((part) => {
      try {
        write(part.rows, part.updates);
        Atomics.add(shared, Slot.COMMITS, 1);
        uncheckpointed += part.rows.length + part.updates.length;
        return true;
      } catch (err) {
        fail(part.seg, err);
        return false;
      }
    });
  }
}

/** SQLITE_BUSY, or one of its extended codes (SQLITE_BUSY_SNAPSHOT …). */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

// Imported by the main thread too (for the types and `Slot`): run only as the writer worker.
if (!isMainThread && (workerData as WriterData | null)?.kind === 'seawall-writer')
  run(workerData as WriterData);
