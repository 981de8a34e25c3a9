/**
 * Event rows' inserts, for `eventWriter` (store/inserts.ts). A row that cannot be stored already
 * is inserted with others, `ROWS_PER_INSERT` in one statement: its id is above every id stored
 * when the write began and above every id met in the write before it. The event loop gives ids in
 * order, so a storm's rows all are. Any other row is inserted alone and skipped when stored: one
 * met again (a segment recovered after its commit), one retried behind later rows, one written
 * ahead before schema 9 (SQLite gives it its id). So is a row whose APPLIED result came in the same
 * write, inserted with it. Rows sharing a statement share its work: ~1 µs a row here
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

const ROW_PARAMS = `(${EVENT_COLUMNS.map(() => '?').join(', ')})`;

/**
 * Idempotent: a row already stored (the same id, given as it was built: store/rows.ts EventParams)
 * is skipped. Bound with the row's values as stored (store/stored-values.ts): the boot's number,
 * the 64-bit values as integers.
 */
export const EVENT_INSERT_SQL = `
  INSERT INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')})
  VALUES ${ROW_PARAMS}
  ON CONFLICT (id) DO NOTHING`;

/**
 * Rows inserted by one statement: 8 measured alike, 32 no better. The last of a write's new rows,
 * fewer than these, are inserted alone.
 */
export const ROWS_PER_INSERT = 16;

const MANY_SQL = `
  INSERT OR ROLLBACK INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')})
  VALUES ${Array(ROWS_PER_INSERT).fill(ROW_PARAMS).join(', ')}`;

const N = EVENT_COLUMNS.length;

/** Told of each row a flush inserted, with its 64-bit GPA as stored. */
export type OnInserted = (v: EventValues, gpa: unknown) => void;

export class EventInserts {
  readonly #one: Database.Statement;
  readonly #many: Database.Statement;
  readonly #maxId: Database.Statement;
  /** The queued rows' values as bound, one row after the other (packed: spread fast). */
  readonly #values: unknown[] = Array.from({ length: ROWS_PER_INSERT * N }, () => null);
  readonly #queued: EventValues[] = [];
  /** Rows above this id are new. */
  #above = 0;

  constructor(db: Database.Database) {
    this.#one = db.prepare(EVENT_INSERT_SQL);
    this.#many = db.prepare(MANY_SQL);
    this.#maxId = db.prepare('SELECT max(id) FROM event_rows').pluck();
  }

  /**
   * As a write of `rows` rows begins, in its transaction. What a failed write left queued goes: its
   * transaction was rolled back.
   */
  begin(rows: number): void {
    this.#queued.length = 0;
    this.#above = rows === 0 ? 0 : ((this.#maxId.get() as number | null) ?? 0);
  }

  /**
   * Queues `v` (its boot's number `boot`) when it is new, inserting the queue when full; false
   * when it is to be inserted alone, after `flush`.
   */
  queue(v: EventValues, boot: number, onInserted: OnInserted): boolean {
    const id = v[COL.id];
    if (id === null || id <= this.#above) return false;
    const at = this.#queued.length * N;
    // 64-bit texts from a JSON line or a row built here as stored; a record read back has them so.
    toStored(v, this.#values, at);
    this.#values[at + COL.bootId] = boot;
    this.#queued.push(v);
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
        done += this.#one.run(...values.slice(i * N, (i + 1) * N)).changes;
    if (done !== queued.length) {
      const why = `${queued.length - done} of ${queued.length} rows taken as new were not inserted`;
      throw new StoreError('SEAWALL_STORE_WRITER', why);
    }
    for (let i = 0; i < queued.length; i++) onInserted(queued[i] as EventValues, values[i * N + COL.gpa]);
    queued.length = 0;
  }

  /** Inserts a row alone (its values as bound): whether it was new. */
  alone(bound: readonly unknown[]): boolean {
    return this.#one.run(...bound).changes === 1;
  }

  /** A row with this id was written alone: later rows are new only above it. */
  met(id: number): void {
    if (id > this.#above) this.#above = id;
  }
}
