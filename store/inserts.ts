/**
 * The SQL that writes events, in one place: the main thread's connection (`EventStore.append`,
 * recovery, the fallback when the writer thread is gone) and the writer thread's connection both
 * prepare their statements from here, so the two can never store a row differently.
 */
import type Database from 'better-sqlite3';
import type { EventParams } from './rows.js';

/** One event row ready to insert, with its poisoned page (vm, gpa, time) and its replay key. */
export interface StoreRow {
  params: EventParams;
  poison: [string, string, number] | null;
  key: string;
}

export interface AppendResult {
  /** New rows. */
  inserted: number;
  /** Rows already present (same boot, session and order), skipped. */
  duplicates: number;
}

/**
 * An APPLIED result waiting for its event row: [session id, seq, result, received ms, fallback
 * action]. The last is the ACTION the plugin's fallback applied before the verdict arrived (a
 * 1.1 APPLIED with source FALLBACK), else null.
 */
export type AppliedUpdate = [
  sessionId: number,
  seq: number,
  result: number,
  timeMs: number,
  fallbackAction: number | null,
];

/**
 * Idempotent: a row already stored (same boot, session and order in the session) is skipped. The
 * order, not the seq, identifies an event: a plugin may reuse a seq once its verdict has arrived.
 */
export const EVENT_INSERT_SQL = `
  INSERT INTO events (boot_id, session_id, seq, time_ms, vm, labels, vcpu, kind, esr, ec, fsc,
    fsc_class, abort, severity, sigbus_code, gva, gpa, replay, fallback_action, action, rule,
    policy_version, downgrade, verdict_action, verdict_flags, latency_ns, non_conforming, kernel_mismatch,
    plugin_time_ns, ord)
  VALUES (@boot_id, @session_id, @seq, @time_ms, @vm, @labels, @vcpu, @kind, @esr, @ec, @fsc,
    @fsc_class, @abort, @severity, @sigbus_code, @gva, @gpa, @replay, @fallback_action, @action, @rule,
    @policy_version, @downgrade, @verdict_action, @verdict_flags, @latency_ns, @non_conforming, @kernel_mismatch,
    @plugin_time_ns, @ord)
  ON CONFLICT (boot_id, session_id, ord) DO NOTHING`;

export const POISON_UPSERT_SQL = `
  INSERT INTO poisoned_pages (vm, gpa, first_seen_ms, last_seen_ms, count) VALUES (?, ?, ?, ?, 1)
  ON CONFLICT (vm, gpa) DO UPDATE SET
    first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms),
    last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms),
    count = count + 1`;

/**
 * The oldest event of the session with that seq still waiting for its APPLIED (seqs may be
 * reused). The record then shows what the guest got: a verdict superseded by the plugin's fallback
 * keeps its row, with fallback_action set (1.1 APPLIED source FALLBACK).
 */
export const APPLIED_UPDATE_SQL = `
  UPDATE events SET applied = ?, applied_ms = ?, fallback_action = COALESCE(?, fallback_action) WHERE id = (
    SELECT MIN(id) FROM events WHERE boot_id = ? AND session_id = ? AND seq = ? AND applied IS NULL)`;

/**
 * One transaction: the rows, then the APPLIED results (after the rows, so a result that arrived
 * while its event was still queued finds the row). Throws on failure, with everything rolled back.
 */
export function eventWriter(
  db: Database.Database,
  bootId: string,
): (rows: readonly StoreRow[], applied?: readonly AppliedUpdate[]) => AppendResult {
  const insert = db.prepare(EVENT_INSERT_SQL);
  const poison = db.prepare(POISON_UPSERT_SQL);
  const applied = db.prepare(APPLIED_UPDATE_SQL);
  return db.transaction((rows: readonly StoreRow[], updates: readonly AppliedUpdate[] = []) => {
    let inserted = 0;
    for (const row of rows) {
      if (insert.run(row.params).changes === 0) continue;
      inserted++;
      // Only a new row counts towards its page, so a repeated insert cannot inflate the count.
      if (row.poison) poison.run(row.poison[0], row.poison[1], row.poison[2], row.poison[2]);
    }
    for (const [sessionId, seq, result, timeMs, fallbackAction] of updates)
      applied.run(result, timeMs, fallbackAction, bootId, sessionId, seq);
    return { inserted, duplicates: rows.length - inserted };
  });
}
