/**
 * Reading an event store from another process (`seawall policy explain --store`): the file opened
 * read-only, never migrated or written, so it can be read beside a running daemon (WAL lets
 * readers and the daemon's writer proceed together). A file from a newer seawall is refused, an
 * older one is read as it is only if it already has what the queries need.
 */
import Database from 'better-sqlite3';
import type { PolicyEvent } from '../policies/index.js';
import { StoreError } from './errors.js';
import { StoreQueries } from './queries.js';
import { type PolicyEventRow, policyEvent } from './rows.js';
import { SCHEMA_VERSION, schemaVersion } from './schema.js';

export class ReadOnlyStore {
  readonly path: string;
  readonly queries: StoreQueries;
  readonly #db: Database.Database;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.queries = new StoreQueries(db, () => {});
  }

  /** Opens `path` read-only; StoreError OPEN (missing, unreadable, not current) or SCHEMA_TOO_NEW. */
  static open(path: string): ReadOnlyStore {
    let db: Database.Database;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new StoreError(
        'SEAWALL_STORE_OPEN',
        `cannot open event store ${path}: ${(err as Error).message}`,
        {
          path,
        },
      );
    }
    const version = schemaVersion(db);
    if (version !== SCHEMA_VERSION) {
      db.close();
      if (version > SCHEMA_VERSION) {
        throw new StoreError(
          'SEAWALL_STORE_SCHEMA_TOO_NEW',
          `${path} has schema version ${version}, newer than this seawall understands (${SCHEMA_VERSION})`,
          { path, found: version, supported: SCHEMA_VERSION },
        );
      }
      throw new StoreError(
        'SEAWALL_STORE_OPEN',
        `${path} has schema version ${version}; start this seawall's daemon on it once to upgrade it`,
        { path, found: version },
      );
    }
    return new ReadOnlyStore(path, db);
  }

  /** The policy's view of the events in [beforeMs - windowMs, beforeMs), oldest first. */
  policyEventsBefore(
    beforeMs: number,
    windowMs: number,
    beforeId: number | null = null,
  ): ReturnType<StoreQueries['policyEventsBefore']> {
    return this.queries.policyEventsBefore(beforeMs, windowMs, undefined, beforeId);
  }

  /**
   * The policy's view of the stored event `id` (`seawall events --json`'s `id`), or null when the
   * store holds none: one row, looked up by its key.
   */
  policyEvent(id: number): PolicyEvent | null {
    const row = this.#db
      .prepare(
        'SELECT time_ms, vm, labels, vcpu, kind, esr, fsc_class, abort, severity, gpa, sigbus_code ' +
          'FROM events WHERE id = ?',
      )
      .get(id) as PolicyEventRow | undefined;
    return row === undefined ? null : policyEvent(row);
  }

  close(): void {
    this.#db.close();
  }
}
