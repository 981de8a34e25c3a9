/**
 * The SQL that writes events, in one place: the main thread's connection (`EventStore.append`,
 * recovery, the fallback when the writer thread is gone) and the writer thread's connection both
 * prepare their statements from here, so the two can never store a row differently.
 */
import type Database from 'better-sqlite3';
import { COL, EVENT_COLUMNS, type EventValues, valuesPoisonPage } from './rows.js';

/** One event row ready to insert, with its replay key. */
export interface StoreRow {
  values: EventValues;
  key: string;
}

export interface AppendResult {
  /** New rows. */
  inserted: number;
  /** Rows already present (same boot, session and order), skipped. */
  duplicates: number;
}

/**
 * An APPLIED result waiting for its event row: [session id, order of the event in its session
 * (store/awaiting-applied.ts), result, received ms, fallback action]. The last is the ACTION the
 * plugin's fallback applied before the verdict arrived (a 1.1 APPLIED with source FALLBACK), else
 * null.
 */
export type AppliedUpdate = [
  sessionId: number,
  ord: number,
  result: number,
  timeMs: number,
  fallbackAction: number | null,
];

/**
 * A plugin session's row: opened (at HELLO) or closed. Written with the next hand-over, like an
 * APPLIED result, so that the verdict path never waits for the database's write lock for it.
 */
export type SessionUpdate =
  | [
      kind: 'open',
      sessionId: number,
      vm: string,
      labels: string,
      vmmPid: number,
      vcpuCount: number,
      caps: number,
      peerUid: number,
      openedMs: number,
    ]
  | [kind: 'close', sessionId: number, closedMs: number, outcome: string, detail: string | null];

/** What is written after a segment's rows, in order. */
export type StoreUpdate = AppliedUpdate | SessionUpdate;

/** Idempotent: a session opened again (a retried segment) keeps its first row. */
export const SESSION_OPEN_SQL = `
  INSERT INTO sessions (boot_id, session_id, vm, labels, vmm_pid, vcpu_count, caps, peer_uid, opened_ms)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`;

export const SESSION_CLOSE_SQL =
  'UPDATE sessions SET closed_ms = ?, outcome = ?, detail = ? WHERE boot_id = ? AND session_id = ?';

/**
 * Idempotent: a row already stored (same boot, session and order in the session) is skipped. The
 * order, not the seq, identifies an event: a plugin may reuse a seq once its verdict has arrived.
 */
export const EVENT_INSERT_SQL = `
  INSERT INTO events (${EVENT_COLUMNS.join(', ')})
  VALUES (${EVENT_COLUMNS.map(() => '?').join(', ')})
  ON CONFLICT (boot_id, session_id, ord) DO NOTHING`;

/** A page's events in one write, counted together: one upsert per page, not per event. */
export const POISON_UPSERT_SQL = `
  INSERT INTO poisoned_pages (vm, gpa, first_seen_ms, last_seen_ms, count) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (vm, gpa) DO UPDATE SET
    first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms),
    last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms),
    count = count + excluded.count`;

/**
 * The event's row, found by the unique key. The record then shows what the guest got: a verdict
 * superseded by the plugin's fallback keeps its row, with fallback_action set (1.1 APPLIED source
 * FALLBACK). A row already carrying a result keeps its first one.
 */
export const APPLIED_UPDATE_SQL = `
  UPDATE events SET applied = ?, applied_ms = ?, fallback_action = COALESCE(?, fallback_action)
  WHERE boot_id = ? AND session_id = ? AND ord = ? AND applied IS NULL`;

/**
 * One transaction: the rows, then the APPLIED results and session rows in the order they came
 * (after the rows, so a result that arrived while its event was still queued finds the row).
 * Throws on failure, with everything rolled back.
 */
export function eventWriter(
  db: Database.Database,
  bootId: string,
): (rows: readonly EventValues[], updates?: readonly StoreUpdate[]) => AppendResult {
  const insert = db.prepare(EVENT_INSERT_SQL);
  const poison = db.prepare(POISON_UPSERT_SQL);
  const applied = db.prepare(APPLIED_UPDATE_SQL);
  const sessionOpen = db.prepare(SESSION_OPEN_SQL);
  const sessionClose = db.prepare(SESSION_CLOSE_SQL);
  return db.transaction((rows: readonly EventValues[], updates: readonly StoreUpdate[] = []) => {
    let inserted = 0;
    // By VM and page: [vm, gpa, first ms, last ms, events]. A storm repeats its pages, so this
    // spares an upsert (and its B-tree search) per event.
    const pages = new Map<string, [string, string, number, number, number]>();
    for (const v of rows) {
      if (insert.run(v).changes === 0) continue;
      inserted++;
      // Only a new row counts towards its page, so a repeated insert cannot inflate the count.
      if (!valuesPoisonPage(v)) continue;
      const vm = v[COL.vm];
      const gpa = v[COL.gpa] as string;
      const t = v[COL.timeMs];
      const key = `${vm}\u0000${gpa}`;
      const page = pages.get(key);
      if (page === undefined) pages.set(key, [vm, gpa, t, t, 1]);
      else {
        page[2] = Math.min(page[2], t);
        page[3] = Math.max(page[3], t);
        page[4]++;
      }
    }
    for (const page of pages.values()) poison.run(page);
    for (const u of updates) {
      if (u[0] === 'open') sessionOpen.run(bootId, ...u.slice(1));
      else if (u[0] === 'close') sessionClose.run(u[2], u[3], u[4], bootId, u[1]);
      else applied.run(u[2], u[3], u[4], bootId, u[0], u[1]);
    }
    return { inserted, duplicates: rows.length - inserted };
  });
}
