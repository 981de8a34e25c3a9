/**
 * How an event row is kept since schema 10, and the view that shows it as before.
 *
 * The rows are in `event_rows`. There the boot is a number, its text in `boots` (a row per daemon
 * start), and the 64-bit values — ESR, GVA, GPA, the plugin's exit time — are
 * SQLite integers holding their 64 bits (signed: a kernel-half GVA is negative there). The view
 * `events` shows every row with the table's columns as they were before, in their order: `boot_id`
 * as text and the 64-bit values as `hex64` text. Every read — the daemon's, `seawall events`, an
 * operator's `sqlite3` — reads the view; only the store's own writes and its replay look-up use
 * `event_rows`. An event takes ~40 % fewer bytes of the file, and the writer thread, which binds
 * four integers and a number where it made and bound five texts, a quarter less CPU
 * (docs/performance.md, 2026-12-04).
 *
 * A text in a 64-bit column that is not `hex64` text (none that seawall wrote) is kept as text, and
 * the view shows it as it was.
 */
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { EVENT_COLUMNS, type EventValues } from './rows.js';

/** The 64-bit columns, stored as integers. */
export const U64_COLUMNS = ['esr', 'gva', 'gpa', 'plugin_time_ns'] as const;

/** Their places in `EventValues`. */
export const U64_INDEXES: readonly number[] = U64_COLUMNS.map((c) => EVENT_COLUMNS.indexOf(c));

/** The columns of `event_rows` in `EventValues` order: the boot's number in place of its text. */
export const EVENT_ROW_COLUMNS: readonly string[] = EVENT_COLUMNS.map((c) => (c === 'boot_id' ? 'boot' : c));

/** A stored 64-bit value: a number when one holds it exactly, else a BigInt (bound as a 64-bit integer). */
export type StoredU64 = number | bigint;

const TWO_32 = 2 ** 32;
/** A value is a number when its high word (signed) is within this: then a number holds it exactly. */
const SAFE_HIGH = 2 ** 21;
const safeHigh = (high: number): boolean => high > -SAFE_HIGH && high < SAFE_HIGH;

/** The value stored for the 64 bits at `at` in `buf` (little-endian): what the writer thread binds. */
export function storedU64At(buf: Buffer, at: number): StoredU64 {
  const high = buf.readInt32LE(at + 4);
  return safeHigh(high) ? high * TWO_32 + buf.readUInt32LE(at) : buf.readBigInt64LE(at);
}

/** The value stored for `v` (an unsigned 64-bit value): the same as `storedU64At` of its bytes. */
export function storedU64(v: bigint): StoredU64 {
  const signed = BigInt.asIntN(64, v);
  return safeHigh(Number(signed >> 32n)) ? Number(signed) : signed;
}

const HEX64 = /^0x[0-9a-f]{16}$/;

/** Whether `s` is `hex64` text. */
export const isHex64 = (s: string): boolean => HEX64.test(s);

/** The value stored for a 64-bit column's value as a row may carry it: `hex64` text, or stored. */
export function storedOf(v: unknown): unknown {
  return typeof v === 'string' && HEX64.test(v) ? storedU64(BigInt(v)) : v;
}

/** `values` with their 64-bit texts as stored (into `out` from `at`; `out` is returned). */
export function toStored(values: EventValues, out: unknown[] = [], at = 0): unknown[] {
  for (let i = 0; i < values.length; i++) out[at + i] = values[i];
  for (const i of U64_INDEXES) out[at + i] = storedOf(values[i]);
  return out;
}

/** A boot's number in `event_rows`, from its text. */
export const BOOT_NUMBER_SQL = 'SELECT n FROM boots WHERE boot_id = ?';

/** Gives a boot its number (once: the same text keeps it). */
const BOOT_INSERT_SQL = 'INSERT INTO boots (boot_id) VALUES (?) ON CONFLICT DO NOTHING';

/**
 * Numbers a daemon's boot as it opens the store, before its writers are made (`bootNumbers`).
 * Throws StoreError OPEN when it cannot (the file locked past the busy timeout).
 */
export function registerBoot(db: Database.Database, path: string, bootId: string): void {
  try {
    db.prepare(BOOT_INSERT_SQL).run(bootId);
  } catch (err) {
    const why = `cannot record this daemon's boot in ${path}: ${(err as Error).message}`;
    throw new StoreError('SEAWALL_STORE_OPEN', why, { path });
  }
}

/** A writer's boot numbers: `of` a boot's text, within one write; `forget` as the next begins. */
export interface BootNumbers {
  of(boot: string): number;
  forget(): void;
}

/**
 * The boot numbers for a writer of `bootId`. Its own, numbered at open (`registerBoot`) and
 * committed, is kept. Another boot's (rows recovered from a killed daemon's files) is numbered in
 * the write that stores them, and not kept past it, as that write may be rolled back; so is this
 * daemon's, had it no number yet.
 */
export function bootNumbers(db: Database.Database, bootId: string): BootNumbers {
  const insert = db.prepare(BOOT_INSERT_SQL);
  const number = db.prepare(BOOT_NUMBER_SQL).pluck();
  const own = number.get(bootId) as number | undefined;
  let others: Map<string, number> | null = null;
  return {
    of(boot: string): number {
      if (boot === bootId && own !== undefined) return own;
      others ??= new Map();
      let n = others.get(boot);
      if (n === undefined) {
        insert.run(boot);
        n = number.get(boot) as number;
        others.set(boot, n);
      }
      return n;
    },
    forget(): void {
      others = null;
    },
  };
}

/**
 * The SQL function migration 10 converts with: a 64-bit column's stored integer from its `hex64`
 * text; another value is kept. A function of this connection only, made as the migration runs:
 * ~0.1 µs a value, against ~1.2 for the same in SQL (16 digits taken apart).
 */
const STORED_U64_FUNCTION = 'seawall_stored_u64';
function defineStoredU64(db: Database.Database): void {
  db.function(STORED_U64_FUNCTION, { deterministic: true, safeIntegers: true }, (v: unknown) =>
    typeof v === 'string' && HEX64.test(v) ? BigInt.asIntN(64, BigInt(v)) : v,
  );
}
const integerOfHex = (c: string): string => `${STORED_U64_FUNCTION}(${c})`;

/** SQL for a 64-bit column's `hex64` text, from what it stores. */
const hexOfInteger = (c: string): string =>
  `CASE typeof(${c}) WHEN 'integer' THEN printf('0x%016x', ${c}) ELSE ${c} END AS ${c}`;

/** The table's columns and types, in the order of the `events` table before schema 10. */
const TABLE: readonly (readonly [string, string])[] = [
  ['id', 'INTEGER PRIMARY KEY'],
  ['boot', 'INTEGER NOT NULL'],
  ['session_id', 'INTEGER NOT NULL'],
  ['seq', 'INTEGER NOT NULL'],
  ['time_ms', 'INTEGER NOT NULL'],
  ['vm', 'TEXT NOT NULL'],
  ['labels', 'TEXT NOT NULL'],
  ['vcpu', 'INTEGER'],
  ['kind', 'TEXT NOT NULL'],
  ['esr', 'INTEGER'],
  ['ec', 'INTEGER'],
  ['fsc', 'INTEGER'],
  ['fsc_class', 'TEXT'],
  ['abort', 'TEXT'],
  ['severity', 'TEXT NOT NULL'],
  ['sigbus_code', 'TEXT'],
  ['gva', 'INTEGER'],
  ['gpa', 'INTEGER'],
  ['replay', 'INTEGER NOT NULL'],
  ['fallback_action', 'INTEGER'],
  ['action', 'TEXT'],
  ['rule', 'TEXT'],
  ['policy_version', 'TEXT'],
  ['downgrade', 'TEXT'],
  ['verdict_action', 'INTEGER'],
  ['verdict_flags', 'INTEGER'],
  ['latency_ns', 'INTEGER'],
  ['non_conforming', 'TEXT'],
  ['kernel_mismatch', 'TEXT'],
  ['applied', 'INTEGER'],
  ['applied_ms', 'INTEGER'],
  ['plugin_time_ns', 'INTEGER'],
  ['ord', 'INTEGER NOT NULL'],
];

const isU64 = (c: string): boolean => (U64_COLUMNS as readonly string[]).includes(c);

/** The boot's text for a row of `event_rows`. */
const BOOT_TEXT = '(SELECT boot_id FROM boots WHERE boots.n = event_rows.boot)';

/**
 * Migration 10: `boots` and `event_rows` filled from `events`, the indexes (the legacy key only
 * when the file has it: lines of a seawall before schema 9 still to recover), and the view.
 */
export function eventRowsMigration(db: Database.Database, legacyKeyIndex: string | null): string {
  defineStoredU64(db);
  const columns = TABLE.map(([c]) => c);
  const copied = columns.map((c) =>
    c === 'boot'
      ? '(SELECT n FROM boots WHERE boots.boot_id = events.boot_id)'
      : isU64(c)
        ? integerOfHex(c)
        : c,
  );
  const shown = columns.map((c) =>
    c === 'boot' ? `${BOOT_TEXT} AS boot_id` : isU64(c) ? hexOfInteger(c) : c,
  );
  return `
    CREATE TABLE boots (
      n       INTEGER PRIMARY KEY,
      boot_id TEXT NOT NULL UNIQUE
    );
    INSERT INTO boots (boot_id) SELECT boot_id FROM events GROUP BY boot_id ORDER BY MIN(id);
    CREATE TABLE event_rows (
      ${TABLE.map(([c, type]) => `${c} ${type}`).join(',\n      ')}
    );
    INSERT INTO event_rows (${columns.join(', ')})
      SELECT ${copied.join(',\n        ')}
      FROM events;
    DROP TABLE events;
    CREATE INDEX events_time ON event_rows (time_ms);
    CREATE INDEX events_vm_time ON event_rows (vm, time_ms);
    CREATE INDEX events_plugin_time ON event_rows (plugin_time_ns);
    ${legacyKeyIndex === null ? '' : `CREATE INDEX ${legacyKeyIndex} ON event_rows (boot, session_id, ord);`}
    CREATE VIEW events AS SELECT ${shown.join(',\n      ')}
      FROM event_rows;
  `;
}
