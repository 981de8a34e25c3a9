/**
 * Rows read back at start under an id that a stored row of another boot holds. Each boot gives ids
 * past the highest stored (EventStore), so when a write-ahead file is set aside at start for records
 * this seawall cannot read (a newer seawall's), the ids those records carry are given again by the
 * next boot: they cannot be reserved, as a record that cannot be read has no id to read. When the
 * operator renames the file back, its rows under such ids are not the stored ones, and the insert
 * (idempotent by id) would skip them as stored. They are taken out of it here and stored at the end
 * of recovery under new ids, past every row stored then (store/segments.ts `recoverPending`). Their
 * APPLIED results find a row by id and boot (store/inserts.ts), so they never land on the other
 * boot's row: they wait in `applied_waiting` and are set as the row is inserted under its new id.
 *
 * Only rows at or below the highest id stored are looked up (one index search each): a killed
 * daemon's rows are above it, but for those of a segment committed just before the kill.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { COL, type EventValues } from './rows.js';
import { BOOT_NUMBER_SQL, storedOf } from './stored-values.js';

export class MovedRows {
  readonly #max: Database.Statement;
  readonly #holder: Database.Statement;
  readonly #boot: Database.Statement;
  readonly #stored: Database.Statement;
  /** By boot and id: a row taken out from two files (the held copy and a segment) is stored once. */
  readonly #taken = new Map<string, EventValues>();
  /** Boots' numbers as looked up: a file's rows are of one boot or a few. */
  readonly #boots = new Map<string, number>();

  constructor(db: Database.Database) {
    const [max, holder, boot, stored] = looking(() => [
      db.prepare('SELECT COALESCE(MAX(id), 0) FROM event_rows').pluck(),
      db.prepare('SELECT boot FROM event_rows WHERE id = ?').pluck(),
      db.prepare(BOOT_NUMBER_SQL).pluck(),
      // The same event, whatever its id: its boot, session and order, found by its plugin time.
      db.prepare(
        'SELECT 1 FROM event_rows WHERE plugin_time_ns = ? AND boot = ? AND session_id = ? AND ord = ? LIMIT 1',
      ),
    ]);
    this.#max = max;
    this.#holder = holder;
    this.#boot = boot;
    this.#stored = stored;
  }

  /** A boot's number; undefined for one the store has not seen yet (its rows give it one as stored). */
  #numberOf(bootId: string): number | undefined {
    let n = this.#boots.get(bootId);
    if (n === undefined) {
      n = this.#boot.get(bootId) as number | undefined;
      if (n !== undefined) this.#boots.set(bootId, n);
    }
    return n;
  }

  /** `rows` less those whose id a row of another boot holds, which are kept for `left`. */
  take(rows: readonly EventValues[]): EventValues[] {
    return looking(() => this.#take(rows));
  }

  #take(rows: readonly EventValues[]): EventValues[] {
    const max = this.#max.get() as number;
    const kept: EventValues[] = [];
    for (const v of rows) {
      const id = v[COL.id];
      if (id === null || id > max) {
        kept.push(v);
        continue;
      }
      const holder = this.#holder.get(id) as number | undefined;
      if (holder === undefined || holder === this.#numberOf(v[COL.bootId])) {
        kept.push(v);
        continue;
      }
      const key = `${v[COL.bootId]}\0${id}`;
      if (!this.#taken.has(key)) this.#taken.set(key, v);
    }
    return kept;
  }

  /** The rows taken, but those whose event is stored already under another id (a file renamed back twice). */
  left(): EventValues[] {
    return looking(() => this.#left());
  }

  #left(): EventValues[] {
    const left: EventValues[] = [];
    for (const v of this.#taken.values()) {
      const boot = this.#numberOf(v[COL.bootId]);
      const key = [storedOf(v[COL.pluginTimeNs]), boot, v[COL.sessionId], v[COL.ord]];
      if (boot === undefined || this.#stored.get(...key) === undefined) left.push(v);
    }
    return left;
  }
}

/** `fn`'s result; a store that cannot answer is a RECOVERY error: the daemon does not start over rows it would lose. */
function looking<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const why = `cannot look up the ids of the rows recovered: ${(err as Error).message}`;
    throw new StoreError('SEAWALL_STORE_RECOVERY', why);
  }
}
