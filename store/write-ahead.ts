/**
 * The write-ahead file in front of the event store. On the verdict path a batch costs one
 * `write(2)` of its rows, as JSON lines, to `<store>.pending` — in the kernel's page cache before
 * the verdicts leave, so it survives kill -9 exactly like a WAL commit would. Every `flushMs` the
 * file is renamed into a segment (`<store>.pending.<n>`, store/segments.ts) and handed to
 * the writer thread, which inserts it in one transaction and unlinks it once committed: SQLite's
 * work leaves the event loop, and until a segment's commit is acknowledged its file is on disk and
 * its replay keys count as pending. At open, every file a killed daemon left is inserted (inserts
 * are idempotent) on this thread, before the writer starts.
 *
 * Bounded: past `maxPending` rows the file is handed over at once; past `maxInFlight` rows not
 * yet committed the verdict path waits for the thread (a disk that cannot keep up slows verdicts
 * rather than growing memory). A failed commit keeps its segment for the next attempt. If the
 * thread dies, its segments are committed here, and so is everything after: the old, slower way.
 */
import { closeSync, ftruncateSync, openSync, renameSync, writeSync } from 'node:fs';
import type { EventRecord } from '../events/index.js';
import { StoreError, type StoreOp } from './errors.js';
import type { EventStore } from './event-store.js';
import type { AppliedUpdate } from './inserts.js';
import { listSegments, readRows, removeSegment, segmentPath, toJson } from './segments.js';
import { WriterClient } from './writer-client.js';

export interface WriteAheadOptions {
  /** How long rows may wait before they are handed to the writer thread. */
  flushMs?: number;
  /** Rows in the file that force a hand-over. */
  maxPending?: number;
  /** Rows handed over and not yet committed that make the verdict path wait. */
  maxInFlight?: number;
  /** How long a read (or close) waits for the writer thread before committing here. */
  waitMs?: number;
  /** false: no writer thread, commits on the event loop (the design before it; for comparison). */
  thread?: boolean;
  onError?: (op: StoreOp, err: unknown) => void;
}

/** A segment handed over and not yet acknowledged as committed. */
interface Segment {
  file: string | null;
  keys: string[];
  applied: AppliedUpdate[];
  /** Failed once: posted again at the next tick. */
  retry: boolean;
}

export class WriteAhead {
  readonly path: string;
  readonly #store: EventStore;
  #fd: number;
  readonly #flushMs: number;
  readonly #maxPending: number;
  readonly #maxInFlight: number;
  readonly #waitMs: number;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  readonly #writer: WriterClient | null;
  /** Replay keys of rows in the file. */
  #keys: string[] = [];
  #applied: AppliedUpdate[] = [];
  /** Replay keys of every row not yet committed (file and segments), with their counts. */
  readonly #pendingKeys = new Map<string, number>();
  readonly #inFlight = new Map<number, Segment>();
  #inFlightRows = 0;
  /** Segment files made (their names' numbers). */
  #segments = 1;
  /** Segments not yet posted are keyed by negative numbers, from this counter. */
  #staged = 0;
  /** The number of the last segment posted to the thread. */
  #posted = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Rows recovered from a previous run's files at open. */
  readonly recovered: number;

  constructor(store: EventStore, opts: WriteAheadOptions = {}) {
    this.#store = store;
    this.path = `${store.path}.pending`;
    this.#flushMs = opts.flushMs ?? 20;
    this.#maxPending = opts.maxPending ?? 10_000;
    this.#maxInFlight = opts.maxInFlight ?? 100_000;
    this.#waitMs = opts.waitMs ?? 2000;
    this.#onError = opts.onError ?? (() => {});
    this.recovered = this.#recover();
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#writer =
      opts.thread === false
        ? null
        : new WriterClient({
            path: store.path,
            bootId: store.bootId,
            onAck: (id, err) => this.#ack(id, err),
            onDead: (err) => {
              this.#onError('append', err);
              this.#commitInFlightHere();
            },
          });
    store.beforeRead = () => this.flush();
  }

  /** Rows written ahead and not yet committed to SQLite. */
  get pending(): number {
    return this.#keys.length + this.#inFlightRows;
  }

  /** The verdict path: one write of the batch's rows; the writer thread takes them within flushMs. */
  record(batch: readonly EventRecord[]): void {
    if (this.#closed) {
      this.#store.append(batch);
      return;
    }
    const rows = this.#store.rowsOf(batch, (key) => this.#pendingKeys.has(key));
    if (rows.length === 0) return;
    try {
      writeSync(this.#fd, `${rows.map(toJson).join('\n')}\n`);
    } catch (err) {
      // The file cannot take it: store directly, the slow but durable way.
      this.#onError('append', err);
      this.#store.appendRows(rows);
      return;
    }
    for (const row of rows) {
      this.#keys.push(row.key);
      this.#pendingKeys.set(row.key, (this.#pendingKeys.get(row.key) ?? 0) + 1);
    }
    if (this.#keys.length >= this.#maxPending) this.#handOver();
    else this.#schedule();
  }

  /**
   * An APPLIED result: set with the next hand-over, after the rows queued before it, so it finds
   * its event's row. Not in the file: a kill -9 within flushMs loses it (the event itself is kept).
   */
  markApplied(sessionId: bigint, seq: number, result: number): void {
    if (this.#closed) {
      this.#store.markApplied(sessionId, seq, result);
      return;
    }
    this.#applied.push([Number(sessionId), seq, result, Date.now()]);
    this.#schedule();
  }

  /** Everything written ahead is in SQLite when this returns (reads call it first). */
  flush(): void {
    this.#handOver();
    if (this.#inFlight.size === 0) return;
    if (this.#writer?.alive) this.#writer.waitFor(this.#posted, this.#waitMs);
    // Whatever the thread has not acknowledged (failed, slow, gone) is committed here; the
    // inserts are idempotent, so a segment the thread commits later as well is stored once.
    this.#commitInFlightHere();
  }

  /** Commits everything, stops the writer thread, closes the file (before the store closes). */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#writer?.close(this.#waitMs);
    this.#commitInFlightHere();
    closeSync(this.#fd);
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => this.#handOver(), this.#flushMs);
    this.#timer.unref();
  }

  /** Turns the file into a segment and posts it (with any segment to retry) to the writer thread. */
  #handOver(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#keys.length > 0 || this.#applied.length > 0) {
      let file: string | null = null;
      if (this.#keys.length > 0) {
        file = segmentPath(this.path, this.#segments++);
        try {
          renameSync(this.path, file);
          closeSync(this.#fd);
          this.#fd = openSync(this.path, 'a', 0o600);
        } catch (err) {
          // The rows stay in the file (still the append path) for the next tick.
          this.#onError('append', err);
          this.#schedule();
          return;
        }
      }
      this.#inFlight.set(-++this.#staged, { file, keys: this.#keys, applied: this.#applied, retry: true });
      this.#inFlightRows += this.#keys.length;
      this.#keys = [];
      this.#applied = [];
    }
    const toPost = [...this.#inFlight].filter(([, seg]) => seg.retry);
    for (const [id, seg] of toPost) {
      if (!this.#writer?.alive) {
        this.#commitHere(id, seg);
        continue;
      }
      // Numbered as posted: the thread processes in that order, and its counter of the last
      // segment processed is what reads wait on.
      this.#inFlight.delete(id);
      this.#inFlight.set(++this.#posted, seg);
      seg.retry = false;
      this.#writer.post(this.#posted, seg.file, seg.applied);
    }
    if (this.#inFlightRows >= this.#maxInFlight) this.flush();
  }

  #ack(id: number, err: Error | null): void {
    const seg = this.#inFlight.get(id);
    if (!seg) return; // committed here already
    if (err) {
      this.#onError('append', err);
      seg.retry = true;
      this.#schedule();
      return;
    }
    this.#done(id, seg);
  }

  #commitInFlightHere(): void {
    for (const [id, seg] of this.#inFlight) this.#commitHere(id, seg);
  }

  #commitHere(id: number, seg: Segment): void {
    try {
      const rows = seg.file ? readRows(seg.file) : [];
      if (this.#store.appendRows(rows, seg.applied) === null) return; // kept for the next attempt
      if (seg.file) removeSegment(seg.file);
    } catch (err) {
      this.#onError('append', err);
      return;
    }
    this.#done(id, seg);
  }

  #done(id: number, seg: Segment): void {
    this.#inFlight.delete(id);
    this.#inFlightRows -= seg.keys.length;
    for (const key of seg.keys) {
      const n = this.#pendingKeys.get(key) ?? 0;
      if (n <= 1) this.#pendingKeys.delete(key);
      else this.#pendingKeys.set(key, n - 1);
    }
  }

  /** Inserts every row a previous run left in `pending` and its segments, then removes them. */
  #recover(): number {
    let count = 0;
    for (const file of [...listSegments(this.path), this.path]) {
      const rows = readRows(file);
      if (rows.length > 0 && this.#store.appendRows(rows) === null) {
        throw new StoreError(
          'SEAWALL_STORE_RECOVERY',
          `cannot move ${rows.length} pending rows from ${file} into the store`,
          {
            file,
            rows: rows.length,
          },
        );
      }
      count += rows.length;
      if (file !== this.path) removeSegment(file);
    }
    const fd = openSync(this.path, 'a', 0o600);
    try {
      ftruncateSync(fd, 0);
    } finally {
      closeSync(fd);
    }
    return count;
  }
}
