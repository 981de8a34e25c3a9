/**
 * The event store's schema as an ordered list of forward migrations. Migration 1 is the first
 * schema; later ones add columns, tables and indexes (11: the times retention deletes by), rebuild a table row for row (4, 9) or drop
 * an index (6, 7), never a row, so an older file upgrades in place and keeps every row. A file is
 * upgraded in one transaction: either every pending migration applies and `schema_version`
 * records each, or nothing changes. A file whose version is above `SCHEMA_VERSION` was written by
 * a newer seawall and is refused. The file's `user_version` is not the schema's: it counts
 * retention's deletes of event rows (store/event-totals.ts `stepEventDeletes`).
 *
 * Value encoding (the same in every table and view):
 * - times are INTEGER milliseconds since the Unix epoch (UTC);
 * - 64-bit register values (ESR, GVA, GPA) are TEXT, `0x` + 16 lowercase hex digits. SQLite's
 *   INTEGER is signed 64-bit, and a GVA in the kernel half (0xffff…) would come back negative;
 *   fixed-width hex keeps numeric order under text comparison, so range queries still work. Since
 *   schema 10 the event rows keep them as integers, and the boot as a number, in `event_rows`,
 *   which the view `events` shows in this encoding (store/stored-values.ts);
 * - small integers (vCPU, seq, session id, latency in ns < 2^53) are INTEGER;
 * - lists and maps (labels, downgrade, mismatched fields) are JSON TEXT.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { eventRowsMigration } from './stored-values.js';

interface Migration {
  version: number;
  /** What this step adds, kept in `schema_version.description`. */
  description: string;
  /** Its SQL, or what makes it from the file as it is before it. */
  sql: string | ((db: Database.Database) => string);
}

/** The index that finds a row by (boot, session, order): only for lines written ahead before schema 9. */
export const LEGACY_KEY_INDEX = 'events_legacy_key';

/** The events table as rebuilt by migrations 4 and 9 (a constraint cannot be dropped in place). */
const eventsTable = (name: string, constraints: string): string => `CREATE TABLE ${name} (
        id              INTEGER PRIMARY KEY,
        boot_id         TEXT NOT NULL,
        session_id      INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        time_ms         INTEGER NOT NULL,
        vm              TEXT NOT NULL,
        labels          TEXT NOT NULL,
        vcpu            INTEGER,
        kind            TEXT NOT NULL,
        esr             TEXT,
        ec              INTEGER,
        fsc             INTEGER,
        fsc_class       TEXT,
        abort           TEXT,
        severity        TEXT NOT NULL,
        sigbus_code     TEXT,
        gva             TEXT,
        gpa             TEXT,
        replay          INTEGER NOT NULL,
        fallback_action INTEGER,
        action          TEXT,
        rule            TEXT,
        policy_version  TEXT,
        downgrade       TEXT,
        verdict_action  INTEGER,
        verdict_flags   INTEGER,
        latency_ns      INTEGER,
        non_conforming  TEXT,
        kernel_mismatch TEXT,
        applied         INTEGER,
        applied_ms      INTEGER,
        plugin_time_ns  TEXT,
        ord             INTEGER NOT NULL${
          constraints === ''
            ? ''
            : `,
        ${constraints}`
        }
      );`;

/** The columns a rebuild of the events table copies, besides `ord` (which 4 made from seq). */
const REBUILT_COLUMNS = `id, boot_id, session_id, seq, time_ms, vm, labels, vcpu, kind, esr, ec, fsc, fsc_class, abort,
  severity, sigbus_code, gva, gpa, replay, fallback_action, action, rule, policy_version, downgrade,
  verdict_action, verdict_flags, latency_ns, non_conforming, kernel_mismatch, applied, applied_ms,
  plugin_time_ns`;

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'events, poisoned pages',
    sql: `
      CREATE TABLE schema_version (
        version     INTEGER PRIMARY KEY,
        applied_ms  INTEGER NOT NULL,
        description TEXT NOT NULL
      );
      CREATE TABLE events (
        id              INTEGER PRIMARY KEY,
        boot_id         TEXT NOT NULL,
        session_id      INTEGER NOT NULL,
        seq             INTEGER NOT NULL,
        time_ms         INTEGER NOT NULL,
        vm              TEXT NOT NULL,
        labels          TEXT NOT NULL,
        vcpu            INTEGER,
        kind            TEXT NOT NULL,
        esr             TEXT,
        ec              INTEGER,
        fsc             INTEGER,
        fsc_class       TEXT,
        abort           TEXT,
        severity        TEXT NOT NULL,
        sigbus_code     TEXT,
        gva             TEXT,
        gpa             TEXT,
        replay          INTEGER NOT NULL,
        fallback_action INTEGER,
        action          TEXT,
        rule            TEXT,
        policy_version  TEXT,
        downgrade       TEXT,
        verdict_action  INTEGER,
        verdict_flags   INTEGER,
        latency_ns      INTEGER,
        non_conforming  TEXT,
        UNIQUE (boot_id, session_id, seq)
      );
      CREATE INDEX events_time ON events (time_ms);
      CREATE INDEX events_vm_time ON events (vm, time_ms);
      CREATE TABLE poisoned_pages (
        vm            TEXT NOT NULL,
        gpa           TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL,
        count         INTEGER NOT NULL,
        PRIMARY KEY (vm, gpa)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    description: 'kernel cross-check, APPLIED outcome, actions, sessions',
    sql: `
      ALTER TABLE events ADD COLUMN kernel_mismatch TEXT;
      ALTER TABLE events ADD COLUMN applied INTEGER;
      ALTER TABLE events ADD COLUMN applied_ms INTEGER;
      CREATE TABLE actions (
        id         INTEGER PRIMARY KEY,
        time_ms    INTEGER NOT NULL,
        vm         TEXT NOT NULL,
        action     TEXT NOT NULL,
        rule       TEXT,
        outcome    TEXT NOT NULL,
        detail     TEXT,
        updated_ms INTEGER NOT NULL
      );
      CREATE INDEX actions_vm_time ON actions (vm, time_ms);
      CREATE TABLE sessions (
        boot_id     TEXT NOT NULL,
        session_id  INTEGER NOT NULL,
        vm          TEXT NOT NULL,
        labels      TEXT NOT NULL,
        vmm_pid     INTEGER NOT NULL,
        vcpu_count  INTEGER NOT NULL,
        caps        INTEGER NOT NULL,
        peer_uid    INTEGER NOT NULL,
        opened_ms   INTEGER NOT NULL,
        closed_ms   INTEGER,
        outcome     TEXT,
        detail      TEXT,
        PRIMARY KEY (boot_id, session_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    description: "plugin's event time, to recognise an event reported again after a daemon crash",
    sql: `
      ALTER TABLE events ADD COLUMN plugin_time_ns TEXT;
    `,
  },
  {
    version: 4,
    description:
      'events keyed by their order in the session (a seq reused after its verdict is a new event); replay lookup index',
    // A table constraint cannot be dropped in place: the table is rebuilt, keeping every row and
    // id. Earlier rows were unique by seq within their session, so their seq serves as their order.
    sql: `
      ${eventsTable('events_v4', 'UNIQUE (boot_id, session_id, ord)')}
      INSERT INTO events_v4 (COLS, ord) SELECT COLS, seq FROM events;
      DROP TABLE events;
      ALTER TABLE events_v4 RENAME TO events;
      CREATE INDEX events_time ON events (time_ms);
      CREATE INDEX events_vm_time ON events (vm, time_ms);
      CREATE INDEX events_session_seq ON events (boot_id, session_id, seq);
      CREATE INDEX events_replay_key ON events (vm, seq, plugin_time_ns);
    `.replaceAll('COLS', REBUILT_COLUMNS),
  },
  {
    version: 5,
    description: 'policy sources by version, and the event each action answered (for seawall why)',
    sql: `
      CREATE TABLE policies (
        version   TEXT PRIMARY KEY,
        name      TEXT NOT NULL,
        source    TEXT NOT NULL,
        loaded_ms INTEGER NOT NULL
      ) WITHOUT ROWID;
      ALTER TABLE actions ADD COLUMN boot_id TEXT;
      ALTER TABLE actions ADD COLUMN session_id INTEGER;
      ALTER TABLE actions ADD COLUMN seq INTEGER;
      CREATE INDEX actions_event ON actions (boot_id, session_id, seq);
      CREATE INDEX events_vm_gpa_time ON events (vm, gpa, time_ms);
    `,
  },
  {
    version: 6,
    description: 'no index on (vm, gpa, time): no query reads it, and every event row paid for it',
    // The windows `policy explain --store` replays are searched on events_time (their bounds are
    // times); this index made an insert touch a page per (VM, page) pair, the largest share of an
    // event row's cost in a storm over many pages (docs/performance.md).
    sql: `
      DROP INDEX IF EXISTS events_vm_gpa_time;
    `,
  },
  {
    version: 7,
    description: 'no index on (boot, session, seq): an APPLIED result finds its event by its order',
    // The event an APPLIED is for is known by its order in the session (store/awaiting-applied.ts),
    // so the unique key finds it; this index cost every row a seventh of its insert.
    sql: `
      DROP INDEX IF EXISTS events_session_seq;
    `,
  },
  {
    version: 8,
    description: 'APPLIED results that reached the store before their event row (store/inserts.ts)',
    // A rowid table: the oldest entries are the lowest rowids, which the bound trims.
    sql: `
      CREATE TABLE applied_waiting (
        boot_id         TEXT NOT NULL,
        session_id      INTEGER NOT NULL,
        ord             INTEGER NOT NULL,
        applied         INTEGER NOT NULL,
        applied_ms      INTEGER NOT NULL,
        fallback_action INTEGER,
        UNIQUE (boot_id, session_id, ord)
      );
    `,
  },
  {
    version: 9,
    description:
      'event rows identified by the id the daemon gives each (no unique key on boot, session, order); ' +
      'replays found by their exit time',
    // Each row's id is given as it is built and goes with it through the write-ahead file
    // (store/rows.ts EventParams), so the primary key makes inserts idempotent and finds the row
    // an APPLIED result is for: the unique key's index, a fifth of a row's insert, goes (the table
    // is rebuilt, keeping every row and id). Replays are looked up by their exit time, which the
    // rows come in the order of, instead of (vm, seq, time), which took an insert into the middle
    // of the index per row. LEGACY_KEY_INDEX serves lines that a seawall before this one wrote
    // ahead (rows without an id, results without their row's), until the next start has
    // recovered them (EventStore.recovered drops it).
    sql: `
      ${eventsTable('events_v9', '')}
      INSERT INTO events_v9 (${REBUILT_COLUMNS}, ord) SELECT ${REBUILT_COLUMNS}, ord FROM events;
      DROP TABLE events;
      ALTER TABLE events_v9 RENAME TO events;
      CREATE INDEX events_time ON events (time_ms);
      CREATE INDEX events_vm_time ON events (vm, time_ms);
      CREATE INDEX events_plugin_time ON events (plugin_time_ns);
      CREATE INDEX ${LEGACY_KEY_INDEX} ON events (boot_id, session_id, ord);
    `,
  },
  {
    version: 10,
    description:
      'event rows keep the boot as a number and 64-bit values as integers (event_rows); the view events shows them as before',
    // ~40 % fewer bytes an event, and texts the writer thread no longer makes and binds per row
    // (docs/performance.md, 2026-12-04). Every read is of the view, so none changes.
    sql: (db) => {
      const legacy = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?")
        .get(LEGACY_KEY_INDEX);
      return eventRowsMigration(db, legacy === undefined ? null : LEGACY_KEY_INDEX);
    },
  },
  {
    version: 11,
    description:
      'actions, sessions and waiting APPLIED results indexed by the time retention deletes them by',
    // Retention deletes these by age a slice at a time (store/prune.ts AGED_DELETES); without the
    // indexes each pass scanned the whole of each table holding the write lock, 0.7 s with 3
    // million sessions and nothing to delete (docs/performance.md, 2026-12-06).
    sql: `
      CREATE INDEX actions_time ON actions (time_ms);
      CREATE INDEX sessions_closed ON sessions (closed_ms);
      CREATE INDEX applied_waiting_time ON applied_waiting (applied_ms);
    `,
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = (MIGRATIONS[MIGRATIONS.length - 1] as Migration).version;

/** The version recorded in `db`, 0 for an empty file. */
export function schemaVersion(db: Database.Database): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    .get();
  if (!table) return 0;
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
  return row.v ?? 0;
}

/**
 * Brings `db` to `SCHEMA_VERSION`. Returns the version found. Throws SCHEMA_TOO_NEW for a file
 * from a newer seawall, MIGRATION when a step fails (nothing is changed then).
 */
export function migrate(db: Database.Database, path: string, nowMs: number = Date.now()): number {
  // BEGIN IMMEDIATE: a second process opening the same file waits instead of migrating twice.
  const run = db.transaction((): number => {
    const found = schemaVersion(db);
    if (found > SCHEMA_VERSION) {
      throw new StoreError(
        'SEAWALL_STORE_SCHEMA_TOO_NEW',
        `${path} has schema version ${found}, newer than this seawall understands (${SCHEMA_VERSION}); ` +
          'run the seawall version that wrote it, or move the file aside to start a new store',
        { path, found, supported: SCHEMA_VERSION },
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= found) continue;
      try {
        db.exec(typeof m.sql === 'string' ? m.sql : m.sql(db));
      } catch (err) {
        throw new StoreError(
          'SEAWALL_STORE_MIGRATION',
          `${path}: migration to schema version ${m.version} (${m.description}) failed: ${(err as Error).message}`,
          { path, found, failedAt: m.version },
          { cause: err },
        );
      }
      // schema_version itself is created by migration 1, so this is prepared after it ran.
      db.prepare('INSERT INTO schema_version (version, applied_ms, description) VALUES (?, ?, ?)').run(
        m.version,
        nowMs,
        m.description,
      );
    }
    return found;
  });
  return run.immediate();
}
