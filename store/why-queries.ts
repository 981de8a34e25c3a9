/**
 * The reads of `seawall why` beside a decision and its own action (StoreQueries.actionFor): how
 * many of the VM's counted events no rule answered (replays, which the plugin's fallback answered)
 * or were answered too late (a verdict the plugin's fallback superseded), the VM's newest stored
 * event (none: the store knows no event of it), and the kill a migration's onFailure started once
 * the migration was refused, failed or timed out.
 */
import type Database from 'better-sqlite3';
import type { StoredAction } from './queries.js';
import { WINDOW_SCAN_ROWS } from './window-queries.js';

/** Of a VM's newest WINDOW_SCAN_ROWS events of a period: those the plugin's fallback answered. */
export interface FallbackCounts {
  /** Replays: answered by the plugin's fallback, decided by no rule. */
  replays: number;
  /** Decided, but the verdict came after the plugin's fallback had answered (1.1 APPLIED). */
  superseded: number;
}

/** The migration outcomes after which a rule's onFailure runs (actions/migration-manager.ts). */
export const FAILED_MIGRATION: ReadonlySet<string> = new Set(['refused', 'failed', 'timed_out']);

export class WhyQueries {
  readonly #fallbacks: Database.Statement;
  readonly #newest: Database.Statement;
  readonly #onFailureKill: Database.Statement;

  constructor(db: Database.Database) {
    // The same rows as the count of the period (store/window-queries.ts): its newest @scan.
    this.#fallbacks = db.prepare(
      'SELECT COALESCE(SUM(replay), 0) AS replays, ' +
        'COALESCE(SUM(replay = 0 AND fallback_action IS NOT NULL), 0) AS superseded FROM (SELECT replay, ' +
        'fallback_action FROM events WHERE vm = @vm AND time_ms >= @since ORDER BY time_ms DESC, id DESC LIMIT @scan)',
    );
    this.#newest = db
      .prepare('SELECT time_ms FROM events WHERE vm = ? ORDER BY time_ms DESC LIMIT 1')
      .pluck();
    // The onFailure kill is asked for under the migration's rule, session and seq, when the
    // migration ends: recorded after the migration's row (a larger id), started while it ran.
    // Rows of one VM between the migration's start and end: a range of actions_vm_time, bounded
    // by the migration's time (actions_event would read every row without an event after it).
    this.#onFailureKill = db.prepare(
      'SELECT k.id, k.time_ms AS timeMs, k.vm, k.action, k.rule, k.outcome, k.detail, k.updated_ms AS updatedMs ' +
        'FROM actions AS m JOIN actions AS k INDEXED BY actions_vm_time ON k.vm = m.vm AND k.time_ms >= m.time_ms ' +
        "AND k.time_ms <= m.updated_ms AND k.action = 'kill' AND k.id > m.id AND k.rule IS m.rule " +
        'AND k.boot_id IS m.boot_id AND k.session_id IS m.session_id AND k.seq IS m.seq ' +
        "WHERE m.id = ? AND m.action = 'migrate' ORDER BY k.id LIMIT 1",
    );
  }

  /** The statements, for tests of their plans. */
  statements(): Record<'fallbacks' | 'newest' | 'onFailureKill', Database.Statement> {
    return { fallbacks: this.#fallbacks, newest: this.#newest, onFailureKill: this.#onFailureKill };
  }

  /** Of `vm`'s newest WINDOW_SCAN_ROWS events since `sinceMs`: replays and superseded verdicts. */
  fallbacks(vm: string, sinceMs: number): FallbackCounts {
    return this.#fallbacks.get({ vm, since: sinceMs, scan: WINDOW_SCAN_ROWS }) as FallbackCounts;
  }

  /** The time of `vm`'s newest stored event, or null when the store holds none of it. */
  newestMs(vm: string): number | null {
    return (this.#newest.get(vm) as number | undefined) ?? null;
  }

  /**
   * The kill the onFailure of migration `m` started, if it did: only after a migration that was
   * refused, failed or timed out. A kill of the session already under way takes the request in
   * (actions/kill-manager.ts): then there is no row of its own, and none is given.
   */
  onFailureKill(m: StoredAction): StoredAction | null {
    if (m.action !== 'migrate' || !FAILED_MIGRATION.has(m.outcome)) return null;
    return (this.#onFailureKill.get(m.id) as StoredAction | undefined) ?? null;
  }
}
