/**
 * Event rows' inserts, for `eventWriter` (store/inserts.ts). A row that cannot be stored already
 * is inserted with others, `ROWS_PER_INSERT` in one statement: its id is above every id stored
 * when the write began and above every id met in the write before it. The event loop gives ids in
 * order, so a storm's rows all are. Any other row is inserted alone and skipped when stored: one
 * met again (a segment recovered after its commit), one retried behind later rows, one written
 * ahead before schema 9 (SQLite gives it its id). Either way a row whose APPLIED result came in the
 * same write is inserted with it. Rows sharing a statement share its work: ~1 µs a row here
 * (docs/performance.md).
 *
 * The shared statement is `INSERT OR ROLLBACK`. For a statement of many rows that may abort
 * (a NOT NULL column, a key), SQLite keeps a statement journal, which cost more than the sharing
 * saved. None of those rows can break a constraint: its id is new, and a row's NOT NULL columns
 * are filled by every writer. Should one, the whole transaction rolls back, where a row alone
 * rolled back its statement; the write throws either way, and nothing of it stays.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { COL, EVENT_COLUMNS, type EventValues } from './rows.js';
import { EVENT_ROW_COLUMNS, toStored } from './stored-values.js';
import type { AppliedUpdate } from './updates.js';

const PARAMS = EVENT_COLUMNS.map(() => '?').join(', ');

/**
 * Idempotent: a row already stored (the same id, given as it was built: store/rows.ts EventParams)
 * is skipped. Bound with the row's values as stored (store/stored-values.ts): the boot's number,
 * the 64-bit values as integers.
 */
export const EVENT_INSERT_SQL = `
  INSERT INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')})
  VALUES (${PARAMS})
  ON CONFLICT (id) DO NOTHING`;

/** A row's values and then its APPLIED result and its time (null, null without one). */
const APPLIED_ROW_PARAMS = `(${PARAMS}, ?, ?)`;

/**
 * The same, with the event's APPLIED result: one that came in the same write as its row is set as
 * the row is inserted, rather than by an update of the row just inserted (eventWriter).
 */
const EVENT_INSERT_APPLIED_SQL = `
  INSERT INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')}, applied, applied_ms)
  VALUES ${APPLIED_ROW_PARAMS}
  ON CONFLICT (id) DO NOTHING`;

/**
 * Rows inserted by one statement: 8 measured alike, 32 no better. The last of a write's new rows,
 * fewer than these, are inserted alone.
 */
export const ROWS_PER_INSERT = 16;

const MANY_SQL = `
  INSERT OR ROLLBACK INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')}, applied, applied_ms)
  VALUES ${Array(ROWS_PER_INSERT).fill(APPLIED_ROW_PARAMS).join(', ')}`;

/** A row's columns, and the values bound for it: its columns, its result and the result's time. */
const N = EVENT_COLUMNS.length;
const W = N + 2;

/** Told of each row a flush inserted, with its 64-bit GPA as stored and its result if it had one. */
export type OnInserted = (v: EventValues, gpa: unknown, result: AppliedUpdate | undefined) => void;

export class EventInserts {
  readonly #one: Database.Statement;
  readonly #oneApplied: Database.Statement;
  readonly #many: Database.Statement;
  readonly #maxId: Database.Statement;
  /** The queued rows' values as bound, one row after the other (packed: spread fast). */
  readonly #values: unknown[] = Array.from({ length: ROWS_PER_INSERT * W }, () => null);
  readonly #queued: EventValues[] = [];
  readonly #results: (AppliedUpdate | undefined)[] = [];
  /** Rows above this id are new. */
  #above = 0;

  constructor(db: Database.Database) {
    this.#one = db.prepare(EVENT_INSERT_SQL);
    this.#oneApplied = db.prepare(EVENT_INSERT_APPLIED_SQL);
    this.#many = db.prepare(MANY_SQL);
    this.#maxId = db.prepare('SELECT max(id) FROM event_rows').pluck();
  }

  /**
   * As a write of `rows` rows begins, in its transaction. What a failed write left queued goes: its
   * transaction was rolled back.
   */
  begin(rows: number): void {
    this.#queued.length = 0;
    this.#results.length = 0;
    this.#above = rows === 0 ? 0 : ((this.#maxId.get() as number | null) ?? 0);
  }

  /**
   * Queues `v` (its boot's number `boot`, the APPLIED result that came with it in this write) when
   * it is new, inserting the queue when full; false when it is to be inserted alone, after `flush`.
   */
  queue(v: EventValues, boot: number, result: AppliedUpdate | undefined, onInserted: OnInserted): boolean {
    const id = v[COL.id];
    if (id === null || id <= this.#above) return false;
    const values = this.#values;
    const at = this.#queued.length * W;
    // 64-bit texts from a JSON line or a row built here as stored; a record read back has them so.
    toStored(v, values, at);
    values[at + COL.bootId] = boot;
    withResult(values, at, v, result);
    this.#queued.push(v);
    this.#results.push(result);
    this.#above = id;
    if (this.#queued.length === ROWS_PER_INSERT) this.flush(onInserted);
    return true;
  }

  /** Inserts the rows queued. */
  flush(onInserted: OnInserted): void {
    const queued = this.#queued;
    if (queued.length === 0) return;
    const values = this.#values;
    let done = 0;
    // Spread: better-sqlite3 binds arguments faster than an array's elements (~0.7 µs a row).
    if (queued.length === ROWS_PER_INSERT) done = this.#many.run(...values).changes;
    else
      for (let i = 0; i < queued.length; i++)
        done += this.#oneApplied.run(...values.slice(i * W, (i + 1) * W)).changes;
    if (done !== queued.length) {
      const why = `${queued.length - done} of ${queued.length} rows taken as new were not inserted`;
      throw new StoreError('SEAWALL_STORE_WRITER', why);
    }
    for (let i = 0; i < queued.length; i++)
      onInserted(queued[i] as EventValues, values[i * W + COL.gpa], this.#results[i]);
    queued.length = 0;
    this.#results.length = 0;
  }

  /**
   * Inserts `v` alone (its values as bound, the APPLIED result that came with it in this write):
   * whether it was new. Without a result, `bound` is bound as it is.
   */
  alone(v: EventValues, bound: unknown[], result: AppliedUpdate | undefined): boolean {
    if (result === undefined) return this.#one.run(...bound).changes === 1;
    const values = bound.slice();
    withResult(values, 0, v, result);
    return this.#oneApplied.run(...values).changes === 1;
  }

  /** A row with this id was written alone: later rows are new only above it. */
  met(id: number): void {
    if (id > this.#above) this.#above = id;
  }
}

/**
 * Sets the row at `at` in `values` (bound for a statement with the result's columns) to carry
 * `result`: its result and time after the row's columns (null without one), and the fallback
 * action the plugin reported with it.
 */
function withResult(values: unknown[], at: number, v: EventValues, result: AppliedUpdate | undefined): void {
  if (result === undefined) {
    values[at + N] = null;
    values[at + N + 1] = null;
    return;
  }
  values[at + COL.fallbackAction] = result[4] ?? v[COL.fallbackAction];
  values[at + N] = result[2];
  values[at + N + 1] = result[3];
}
