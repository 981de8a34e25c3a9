/**
 * One retention pass over a connection: events older than the cutoff, then the actions, closed
 * sessions and waiting APPLIED results older than it, then — while the data exceeds `maxBytes` —
 * the oldest events, then the freed pages handed back to the file system (`incremental_vacuum`).
 * Every delete and vacuum step is a slice of about `sliceMs`, its own short transaction, timed
 * into `longestSliceMs`, and `pause`s follow each, so that the writer thread, which commits on
 * the same file, gets the write lock within its busy timeout. How many rows (or pages) a slice takes is
 * learned from the slice before: what a row costs depends on the disk, the indexes and the load.
 * The retention thread (store/retention-thread.ts) runs it; tests run it with a clock of their own.
 * Poisoned pages are never pruned: they are the VM's history. Actions and closed sessions go by
 * age with events. Deleting events cannot shrink these tables: the events are kept to what they
 * leave of `maxBytes`, and once they alone exceed it nothing is deleted by size (the loop once
 * deleted every event of the store, every pass — a plugin can make up poisoned pages).
 */
import type Database from 'better-sqlite3';
import { stepEventDeletes } from './event-totals.js';
import { freePages, usedBytes } from './queries.js';

export interface PruneOptions {
  /** Events (and actions, closed sessions) before this time (ms since the epoch) are deleted. */
  cutoffMs: number;
  /** Data bytes above which the oldest events are deleted, as far as deleting events can reach. */
  maxBytes: number;
  /** Most rows one delete statement takes. */
  chunkRows: number;
  /** About how long one slice may hold the write lock, in ms; Infinity: no bound. */
  sliceMs: number;
}

export interface PruneEnv {
  /** Monotonic milliseconds. */
  clock: () => number;
  /** Between slices, given the last slice's length in ms (a promise: waited for). */
  pause: (ms: number) => undefined | Promise<void>;
  /** Checked between slices: true ends the pass early. */
  stopped: () => boolean;
}

export interface RetentionRun {
  deletedByAge: number;
  deletedBySize: number;
  /** Actions, closed sessions and waiting APPLIED results deleted by age (not events: not counted above). */
  deletedOthers: number;
  /** Data bytes after the run. */
  bytes: number;
  /** Of `bytes`, those the events and their indexes hold: what `maxBytes` bounds. */
  eventBytes: number;
  /** Of `bytes`, those of the tables retention keeps by size (poisoned pages, actions …). */
  keptBytes: number;
  /** Statements run (deletes and vacuum steps), each a transaction of its own. */
  slices: number;
  /** The longest slice, in ms: the longest the writer thread waited for the lock behind this pass. */
  longestSliceMs: number;
}

/**
 * The rows besides events that go by age, a slice at a time: `?` the cutoff, then the most rows.
 * Each searches its table's time index (schema 11) and deletes by the primary key. A session
 * still open has no `closed_ms` and is kept. `applied_waiting` holds results whose event never
 * reached the store (dropped past a bound, or lost with a process).
 */
export const AGED_DELETES = {
  actions:
    'DELETE FROM actions WHERE id IN (SELECT id FROM actions WHERE time_ms < ? ORDER BY time_ms LIMIT ?)',
  sessions:
    'DELETE FROM sessions WHERE (boot_id, session_id) IN ' +
    '(SELECT boot_id, session_id FROM sessions WHERE closed_ms < ? ORDER BY closed_ms LIMIT ?)',
  applied_waiting:
    'DELETE FROM applied_waiting WHERE rowid IN ' +
    '(SELECT rowid FROM applied_waiting WHERE applied_ms < ? ORDER BY applied_ms LIMIT ?)',
} as const;

/** The first slice's rows or pages, before any has been timed. */
const FIRST_SLICE = 16;
/** Most pages one vacuum step frees. */
const MAX_VACUUM_PAGES = 4096;

export async function prune(db: Database.Database, opts: PruneOptions, env: PruneEnv): Promise<RetentionRun> {
  // The row of the highest id stays, whatever its time: the next start gives ids past it
  // (EventStore), and an id given again would be passed over by `seawall events --follow` and named
  // twice by `--event-id`. A replay is stored at its own, older time and can be that row.
  const notLast = 'id < (SELECT MAX(id) FROM event_rows)';
  // Each delete of event rows steps the file's count of them in its transaction: `status`'s figures,
  // kept between reads, count afresh after it (store/event-totals.ts).
  const deleting = (sql: string) => {
    const stmt = db.prepare(sql);
    return db.transaction((...params: number[]): number => {
      const n = stmt.run(...params).changes;
      if (n > 0) stepEventDeletes(db);
      return n;
    });
  };
  const byAge = deleting(
    `DELETE FROM event_rows WHERE id IN (SELECT id FROM event_rows WHERE time_ms < ? AND ${notLast} ORDER BY time_ms LIMIT ?)`,
  );
  const oldest = deleting(
    `DELETE FROM event_rows WHERE id IN (SELECT id FROM event_rows WHERE ${notLast} ORDER BY time_ms, id LIMIT ?)`,
  );
  const slices = new Slices(opts.sliceMs, env);

  let deletedByAge = 0;
  while (!env.stopped()) {
    const n = slices.size(opts.chunkRows);
    const done = await slices.run(n, () => byAge(opts.cutoffMs, n));
    deletedByAge += done;
    if (done < n) break;
  }
  // Each table in slices of its own, searched on its time index (schema 11): a pass over millions
  // of sessions once held the write lock for a whole scan, even with nothing to delete.
  let deletedOthers = 0;
  for (const sql of Object.values(AGED_DELETES)) {
    const aged = db.prepare(sql);
    slices.learnAgain();
    while (!env.stopped()) {
      const n = slices.size(opts.chunkRows);
      const done = await slices.run(n, () => aged.run(opts.cutoffMs, n).changes);
      deletedOthers += done;
      if (done < n) break;
    }
  }
  let deletedBySize = 0;
  // Measured once a pass: deleting events does not shrink them (the writer may grow them meanwhile,
  // by far less than a pass deletes).
  const keptBytes = keptTableBytes(db);
  const eventBytes = (): number => Math.max(0, usedBytes(db) - keptBytes);
  // What the kept tables leave the events; nothing when they alone pass the bound (reported).
  const eventBound = opts.maxBytes - keptBytes;
  // What a row holds, counted once a pass: the events' bytes over their bound divided by it is as
  // many rows as deleting can still need, so a slice never deletes past the bound.
  let rowBytes = 0;
  for (let over = eventBound > 0 ? eventBytes() - eventBound : 0; !env.stopped() && over > 0; ) {
    if (rowBytes === 0) {
      const rows = db.prepare('SELECT count(*) FROM event_rows').pluck().get() as number;
      if (rows === 0) break;
      rowBytes = (over + opts.maxBytes) / rows;
    }
    const needed = Math.max(1, Math.floor(over / rowBytes));
    const n = slices.size(Math.min(opts.chunkRows, needed));
    const done = await slices.run(n, () => oldest(n));
    deletedBySize += done;
    if (done === 0) break;
    over = eventBytes() - eventBound;
  }
  // auto_vacuum=INCREMENTAL: hand the freed pages back so the file shrinks too.
  if (deletedByAge + deletedBySize + deletedOthers > 0) {
    slices.learnAgain();
    while (!env.stopped() && freePages(db) > 0) {
      const before = freePages(db);
      const n = slices.size(MAX_VACUUM_PAGES, before);
      const freed = await slices.run(n, () => {
        db.pragma(`incremental_vacuum(${n})`);
        return before - freePages(db);
      });
      // A file without auto_vacuum=INCREMENTAL hands nothing back: free pages are reused instead.
      if (freed === 0) break;
    }
  }
  const bytes = usedBytes(db);
  return {
    deletedByAge,
    deletedBySize,
    deletedOthers,
    bytes,
    eventBytes: Math.max(0, bytes - keptBytes),
    keptBytes,
    slices: slices.count,
    longestSliceMs: slices.longestMs,
  };
}

/**
 * Bytes of the pages of every table and index but the events' (`dbstat`, one b-tree at a time:
 * only the kept tables' pages are read, not the events').
 */
function keptTableBytes(db: Database.Database): number {
  const names = db
    .prepare("SELECT name FROM sqlite_schema WHERE rootpage > 0 AND tbl_name <> 'event_rows'")
    .pluck()
    .all() as string[];
  const size = db
    .prepare('SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? AND aggregate = TRUE')
    .pluck();
  let bytes = 0;
  for (const name of ['sqlite_schema', ...names]) bytes += size.get(name) as number;
  return bytes;
}

/**
 * How much one slice takes: the first takes `FIRST_SLICE` units, each next one as many as the
 * last slice's pace fits in `sliceMs`, at most twice the last (one quick slice, cheap pages in
 * the cache, must not make the next one huge) and at most what the caller allows.
 */
class Slices {
  count = 0;
  longestMs = 0;
  #next = FIRST_SLICE;
  readonly #sliceMs: number;
  readonly #env: PruneEnv;

  constructor(sliceMs: number, env: PruneEnv) {
    this.#sliceMs = sliceMs;
    this.#env = env;
  }

  /** Units for the next slice: at most `max`, never more than `left`; all of `left` without a bound. */
  size(max: number, left = max): number {
    if (this.#sliceMs === Number.POSITIVE_INFINITY) return Math.max(1, left);
    return Math.max(1, Math.min(this.#next, max, left));
  }

  /** A new kind of work (vacuum pages, not rows): its pace is learned from the start. */
  learnAgain(): void {
    this.#next = FIRST_SLICE;
  }

  /** Runs one slice of `n` units, then pauses; returns the units done. */
  async run(n: number, slice: () => number): Promise<number> {
    const start = this.#env.clock();
    const done = slice();
    const ms = this.#env.clock() - start;
    this.count++;
    this.longestMs = Math.max(this.longestMs, ms);
    // Paced by what was done, not asked: a slice that found nothing to do says nothing of the cost.
    if (done > 0) {
      const fits = ms > 0 ? Math.floor((done * this.#sliceMs) / ms) : 2 * n;
      this.#next = Math.max(1, Math.min(fits, 2 * n));
    }
    await this.#env.pause(ms);
    return done;
  }
}
