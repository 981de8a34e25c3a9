/**
 * The SQL that writes events, in one place: the main thread's connection (`EventStore.append`,
 * recovery, the fallback when the writer thread is gone) and the writer thread's connection both
 * prepare their statements from here, so the two can never store a row differently.
 *
 * Every write here gives the same rows in whichever order segments commit — a retried segment may
 * land after later ones: inserts and session, action and policy rows are idempotent or carry the
 * whole row, and an APPLIED result, the one update that needs its event's row, waits in
 * `applied_waiting` when the row is not stored yet and is set as the row is inserted.
 */
import type Database from 'better-sqlite3';
import { EventInserts } from './event-inserts.js';
import { COL, EVENT_COLUMNS, type EventValues, hex64, type ReplayKey, valuesPoisonPage } from './rows.js';
import {
  BOOT_NUMBER_SQL,
  bootNumbers,
  EVENT_ROW_COLUMNS,
  type StoredU64,
  toStored,
} from './stored-values.js';
import { type AppliedUpdate, isApplied, type StoreUpdate } from './updates.js';

/** One event row ready to insert, with its replay key. */
export interface StoreRow {
  values: EventValues;
  key: ReplayKey;
}

export interface AppendResult {
  /** New rows. */
  inserted: number;
  /** Rows already present (the same id; for a row written before schema 9, boot, session and order), skipped. */
  duplicates: number;
}

const SESSION_INSERT = `
  INSERT INTO sessions (boot_id, session_id, vm, labels, vmm_pid, vcpu_count, caps, peer_uid, opened_ms`;

/** Idempotent: a session opened again (a retried segment), or already closed, keeps its row. */
export const SESSION_OPEN_SQL = `${SESSION_INSERT})
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`;

/** The whole row, so a close that lands before its open (a retried segment) still leaves both. */
export const SESSION_CLOSE_SQL = `${SESSION_INSERT}, closed_ms, outcome, detail)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT DO UPDATE SET closed_ms = excluded.closed_ms, outcome = excluded.outcome, detail = excluded.detail`;

const ACTION_INSERT = `
  INSERT INTO actions (id, time_ms, vm, action, rule, outcome, detail, updated_ms, boot_id, session_id, seq)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id)`;

/** Idempotent, and never over an outcome that landed first. */
export const ACTION_START_SQL = `${ACTION_INSERT} DO NOTHING`;

export const ACTION_END_SQL = `${ACTION_INSERT}
  DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, updated_ms = excluded.updated_ms`;

export const POLICY_SQL =
  'INSERT INTO policies (version, name, source, loaded_ms) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING';

/**
 * A row written ahead by a seawall before schema 9, without an id: skipped when stored already
 * (the same boot, session and order in the session, at the same time), and given one by SQLite.
 * Bound with the row's values, then its time, boot, session and order.
 */
export const LEGACY_EVENT_INSERT_SQL = `
  INSERT INTO event_rows (${EVENT_ROW_COLUMNS.join(', ')})
  SELECT ${EVENT_COLUMNS.map(() => '?').join(', ')}
  WHERE NOT EXISTS (SELECT 1 FROM event_rows WHERE time_ms = ? AND boot = ? AND session_id = ? AND ord = ?)`;

/** A page's events in one write, counted together: one upsert per page, not per event. */
export const POISON_UPSERT_SQL = `
  INSERT INTO poisoned_pages (vm, gpa, first_seen_ms, last_seen_ms, count) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (vm, gpa) DO UPDATE SET
    first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms),
    last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms),
    count = count + excluded.count`;

/**
 * The event's row, found by its id and boot (bound as its number): a boot gives an id once, but a
 * later boot may give it again when the row was in a file set aside at start (records this seawall
 * cannot read); that row, renamed back, is stored under a new id (store/moved-rows.ts), and its
 * result must not land on the later boot's row. The record then shows what the guest got: a verdict
 * superseded by the plugin's fallback keeps its row, with fallback_action set (1.1 APPLIED source
 * FALLBACK). A row already carrying a result keeps its first one.
 */
const APPLIED_SET = `
  UPDATE event_rows SET applied = ?, applied_ms = ?, fallback_action = COALESCE(?, fallback_action)`;
export const APPLIED_UPDATE_SQL = `${APPLIED_SET} WHERE id = ? AND boot = ? AND applied IS NULL`;

/** The same for a result written ahead before schema 9, by boot, session and order. */
const LEGACY_APPLIED_UPDATE_SQL = `${APPLIED_SET}
  WHERE boot = (${BOOT_NUMBER_SQL}) AND session_id = ? AND ord = ? AND applied IS NULL`;

/**
 * An APPLIED result whose event row is not stored yet, kept until the row is inserted: through a
 * store fault the segment with the row can commit after a later one that carries the result (the
 * row's commit failed and waits for its retry, or the row was held in memory). The first result
 * kept wins, as on the row.
 */
const appliedWait = (row: string): string => `
  INSERT INTO applied_waiting (boot_id, session_id, ord, applied, applied_ms, fallback_action)
  SELECT @boot, @session, @ord, @applied, @ms, @fallback
  WHERE NOT EXISTS (SELECT 1 FROM event_rows WHERE ${row})
  ON CONFLICT DO NOTHING`;
export const APPLIED_WAIT_SQL = appliedWait('id = @id AND boot = @n');
const LEGACY_APPLIED_WAIT_SQL = appliedWait(
  `boot = (${BOOT_NUMBER_SQL.replace('?', '@boot')}) AND session_id = @session AND ord = @ord`,
);

/** A kept result, taken as its row is inserted. */
export const APPLIED_TAKE_SQL = `
  DELETE FROM applied_waiting WHERE boot_id = ? AND session_id = ? AND ord = ?
  RETURNING applied, applied_ms, fallback_action`;

/**
 * Results kept at most: as many as rows may be uncommitted at once by default (write-ahead's
 * `maxInFlight` and `maxHeld`). Past it the oldest go: each is a result whose row was held longest,
 * or will never come (dropped past `maxHeld`, lost with a killed daemon); retention prunes the rest.
 */
export const MAX_APPLIED_WAITING = 300_000;

/** What `eventWriter` returns. */
export interface EventWriter {
  (rows: readonly EventValues[], updates?: readonly StoreUpdate[]): AppendResult;
  /** The same writes, in a transaction the caller holds. */
  within(rows: readonly EventValues[], updates?: readonly StoreUpdate[]): AppendResult;
}

/**
 * One transaction: the rows, then the APPLIED results and the session, action and policy rows in
 * the order they came (after the rows, so a result that arrived while its event was still queued
 * finds the row). A result whose row is not there yet waits for it in `applied_waiting`, and a row
 * inserted picks up its result from there: segments may commit in any order.
 * Throws on failure, with everything rolled back. It begins IMMEDIATE (within another transaction,
 * a savepoint): it reads before it writes, and SQLite does not wait for a lock on behalf of a
 * read transaction that must become a write one, so a DEFERRED one failed at once, without the
 * busy timeout, whenever another connection (a retention slice, the other writer) held the lock.
 * `within` does the same writes in the caller's transaction: the writer thread commits several
 * segments in one, and a savepoint for each gained nothing (a failure rolls back all of them, which
 * are then written one by one) but cost ~0.3 µs a row in the pages it journals.
 */
export function eventWriter(db: Database.Database, bootId: string): EventWriter {
  const inserts = new EventInserts(db);
  const poison = db.prepare(POISON_UPSERT_SQL);
  const applied = db.prepare(APPLIED_UPDATE_SQL);
  const setApplied = db.prepare(
    'UPDATE event_rows SET applied = ?, applied_ms = ?, fallback_action = ? WHERE id = ?',
  );
  // Lines a seawall before schema 9 wrote ahead: found by (boot, session, order), prepared once met.
  let legacy:
    | { insert: Database.Statement; applied: Database.Statement; wait: Database.Statement }
    | undefined;
  const legacyOnes = () =>
    (legacy ??= {
      insert: db.prepare(LEGACY_EVENT_INSERT_SQL),
      applied: db.prepare(LEGACY_APPLIED_UPDATE_SQL),
      wait: db.prepare(LEGACY_APPLIED_WAIT_SQL),
    });
  const sessionOpen = db.prepare(SESSION_OPEN_SQL);
  const sessionClose = db.prepare(SESSION_CLOSE_SQL);
  const actionStart = db.prepare(ACTION_START_SQL);
  const actionEnd = db.prepare(ACTION_END_SQL);
  const policy = db.prepare(POLICY_SQL);
  const wait = db.prepare(APPLIED_WAIT_SQL);
  const take = db.prepare<unknown[], { applied: number; applied_ms: number; fallback_action: number | null }>(
    APPLIED_TAKE_SQL,
  );
  const trim = db.prepare('DELETE FROM applied_waiting WHERE rowid <= ?');
  const anyWaiting = db.prepare('SELECT EXISTS (SELECT 1 FROM applied_waiting)').pluck();
  const boots = bootNumbers(db, bootId);
  // A row's values as bound: copied here, so that a row held for a retry keeps its own.
  const bound: unknown[] = new Array(EVENT_COLUMNS.length);
  const write = (rows: readonly EventValues[], updates: readonly StoreUpdate[] = []): AppendResult => {
    boots.forget();
    let inserted = 0;
    inserts.begin(rows.length);
    // Almost always none: then no row pays for a look-up.
    const pickUp = rows.length > 0 && anyWaiting.get() === 1;
    // APPLIED results of this write whose row is in it too: set with the insert, not by an update
    // of the row just inserted (an index search and a page written again per event).
    const withRow = appliedWithRows(rows, updates);
    // Results set with their row's insert: not updated again below.
    const setWithRow = new Set<StoreUpdate>();
    // By VM, then page: [gpa, first ms, last ms, events]. A storm repeats its pages, so this
    // spares an upsert (and its B-tree search) per event.
    const pages = new Map<string, Map<unknown, [StoredU64 | string, number, number, number]>>();
    // What follows a row's insert: its count, its result set with it, a result kept waiting for
    // it, its page.
    const stored = (v: EventValues, id: number, result: AppliedUpdate | undefined, gpa: unknown): void => {
      inserted++;
      if (result !== undefined) setWithRow.add(result);
      if (pickUp) {
        const w = take.get(v[COL.bootId], v[COL.sessionId], v[COL.ord]);
        if (w !== undefined && result === undefined) {
          applied.run(w.applied, w.applied_ms, w.fallback_action, id, boots.of(v[COL.bootId]));
        } else if (w !== undefined) {
          // The result kept waiting came first, and the first wins: the one of this write then
          // finds the row's result set, as it would have without being set with the insert.
          setApplied.run(w.applied, w.applied_ms, w.fallback_action ?? v[COL.fallbackAction], id);
          setWithRow.delete(result as AppliedUpdate);
        }
      }
      // Only a new row counts towards its page, so a repeated insert cannot inflate the count.
      if (!valuesPoisonPage(v)) return;
      const t = v[COL.timeMs];
      let ofVm = pages.get(v[COL.vm]);
      if (ofVm === undefined) {
        ofVm = new Map();
        pages.set(v[COL.vm], ofVm);
      }
      const page = ofVm.get(gpa);
      if (page === undefined) ofVm.set(gpa, [gpa as StoredU64 | string, t, t, 1]);
      else {
        page[1] = Math.min(page[1], t);
        page[2] = Math.max(page[2], t);
        page[3]++;
      }
    };
    const onInserted = (v: EventValues, gpa: unknown, result: AppliedUpdate | undefined): void =>
      stored(v, v[COL.id] as number, result, gpa);
    for (const v of rows) {
      const boot = boots.of(v[COL.bootId]);
      let id = v[COL.id];
      const result = id === null ? undefined : withRow?.get(v[COL.sessionId])?.get(v[COL.ord]);
      if (inserts.queue(v, boot, result, onInserted)) continue;
      inserts.flush(onInserted);
      toStored(v, bound);
      bound[COL.bootId] = boot;
      if (id === null) {
        const key = [v[COL.timeMs], boot, v[COL.sessionId], v[COL.ord]];
        const done = legacyOnes().insert.run(...bound, ...key);
        if (done.changes === 0) continue;
        id = Number(done.lastInsertRowid);
        inserts.met(id);
      } else {
        inserts.met(id);
        // A row stored already keeps its place; its result is updated below as any other.
        if (!inserts.alone(v, bound, result)) continue;
      }
      stored(v, id, result, bound[COL.gpa]);
    }
    inserts.flush(onInserted);
    // poisoned_pages keeps the page as text (a row per page, not per event).
    for (const [vm, ofVm] of pages)
      for (const [gpa, first, last, n] of ofVm.values())
        poison.run(
          vm,
          typeof gpa === 'string' ? gpa : hex64(BigInt.asUintN(64, BigInt(gpa))),
          first,
          last,
          n,
        );
    for (const u of updates) {
      switch (u[0]) {
        case 'open':
        case 'close':
          (u[0] === 'open' ? sessionOpen : sessionClose).run(bootId, ...u.slice(1));
          break;
        case 'action':
        case 'action-end': {
          const [kind, id, ...values] = u;
          // Linked to an event of this boot when it has one (seawall why).
          const boot = values[7] === null ? null : bootId;
          (kind === 'action' ? actionStart : actionEnd).run(
            id,
            ...values.slice(0, 7),
            boot,
            ...values.slice(7),
          );
          break;
        }
        case 'policy':
          policy.run(u.slice(1));
          break;
        default: {
          if (setWithRow.has(u)) break;
          const [session, ord, result, ms, fallback, id] = u;
          const old = id === null ? legacyOnes() : undefined;
          const set = old
            ? old.applied.run(result, ms, fallback, bootId, session, ord)
            : applied.run(result, ms, fallback, id, boots.of(bootId));
          if (set.changes === 1) break;
          const waiting = { boot: bootId, session, ord, applied: result, ms, fallback };
          const kept = old ? old.wait.run(waiting) : wait.run({ ...waiting, id, n: boots.of(bootId) });
          const oldest = Number(kept.lastInsertRowid) - MAX_APPLIED_WAITING;
          if (kept.changes === 1 && oldest > 0) trim.run(oldest);
        }
      }
    }
    return { inserted, duplicates: rows.length - inserted };
  };
  return Object.assign(db.transaction(write).immediate, { within: write });
}

/**
 * The APPLIED results among `updates`, by session and order: the first for each event (the first
 * result wins, as on a stored row). Null when there are none, or no rows to set them with.
 */
function appliedWithRows(
  rows: readonly EventValues[],
  updates: readonly StoreUpdate[],
): Map<number, Map<number, AppliedUpdate>> | null {
  if (rows.length === 0) return null;
  let bySession: Map<number, Map<number, AppliedUpdate>> | null = null;
  for (const u of updates) {
    if (!isApplied(u)) continue;
    bySession ??= new Map();
    let byOrd = bySession.get(u[0]);
    if (byOrd === undefined) {
      byOrd = new Map();
      bySession.set(u[0], byOrd);
    }
    if (!byOrd.has(u[1])) byOrd.set(u[1], u);
  }
  return bySession;
}
