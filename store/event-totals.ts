/**
 * The event figures of `seawall status` — events, replays, distinct VMs, decided events by action,
 * the oldest and newest — kept between reads and brought up to date from the rows added since the
 * last. Counted afresh at each read they cost a pass over every stored event: 0.4–1.4 s for a
 * million rows (docs/operations.md), against a store that retention lets grow to 1 GiB.
 *
 * Rows are added with increasing ids and their counted columns never change afterwards; rows go
 * only by retention's deletes. A read therefore takes the rows above the last read's highest id,
 * and counts everything again when the store holds other rows than the last read's and those:
 * retention deleted rows (it steps the file's deletes, {@link stepEventDeletes}: deleting by time,
 * it can leave the lowest id and the count as they were, a row added late making up for the one
 * deleted), or the count differs (a row was added below the last highest id, as a segment taken
 * over late can be). Call inside a read transaction, so that all its statements see one snapshot.
 */
import type Database from 'better-sqlite3';

export interface EventFigures {
  events: number;
  replays: number;
  vms: number;
  /** Decided events by action. */
  byAction: Record<string, number>;
  oldestMs: number | null;
  newestMs: number | null;
}

/**
 * How many times retention has deleted event rows, modulo 2^31: the file's `user_version`, which
 * the schema leaves unused (store/schema.ts keeps its version in a table), stepped in the same
 * transaction as each delete, so that a snapshot holds the rows and the count that goes with them.
 */
export function stepEventDeletes(db: Database.Database): void {
  const n = db.pragma('user_version', { simple: true }) as number;
  db.pragma(`user_version = ${(n + 1) & 0x7fffffff}`);
}

interface Kept {
  deletes: number;
  minId: number | null;
  maxId: number;
  events: number;
  replays: number;
  byAction: Map<string, number>;
  vms: Set<string>;
}

interface Bounds {
  deletes: number;
  n: number;
  minId: number | null;
  maxId: number | null;
  oldestMs: number | null;
  newestMs: number | null;
}

export class EventTotals {
  readonly #bounds: Database.Statement;
  readonly #counts: Database.Statement;
  readonly #byAction: Database.Statement;
  readonly #vms: Database.Statement;
  #kept: Kept | null = null;

  constructor(db: Database.Database) {
    // Each a subquery of its own: COUNT(*) by the smallest index, the rest one index lookup each.
    this.#bounds = db.prepare(
      'SELECT (SELECT user_version FROM pragma_user_version) AS deletes, ' +
        '(SELECT COUNT(*) FROM event_rows) AS n, (SELECT MIN(id) FROM event_rows) AS minId, ' +
        '(SELECT MAX(id) FROM event_rows) AS maxId, (SELECT MIN(time_ms) FROM event_rows) AS oldestMs, ' +
        '(SELECT MAX(time_ms) FROM event_rows) AS newestMs',
    );
    this.#counts = db.prepare(
      'SELECT COUNT(*) AS n, COALESCE(SUM(replay), 0) AS replays FROM event_rows WHERE id > ?',
    );
    this.#byAction = db.prepare(
      'SELECT action, COUNT(*) AS n FROM event_rows WHERE id > ? AND action IS NOT NULL GROUP BY action',
    );
    this.#vms = db.prepare('SELECT DISTINCT vm FROM event_rows WHERE id > ?').pluck();
  }

  read(): EventFigures {
    const b = this.#bounds.get() as Bounds;
    const k = this.#kept;
    const added =
      k !== null && k.deletes === b.deletes && k.minId === b.minId ? this.#addedSince(k, b) : null;
    const now = added ?? this.#countAll(b);
    this.#kept = now;
    return {
      events: now.events,
      replays: now.replays,
      vms: now.vms.size,
      byAction: Object.fromEntries(now.byAction),
      oldestMs: b.oldestMs,
      newestMs: b.newestMs,
    };
  }

  /** The kept figures with the rows above their highest id added, or null when others changed. */
  #addedSince(k: Kept, b: Bounds): Kept | null {
    const c = this.#counts.get(k.maxId) as { n: number; replays: number };
    if (k.events + c.n !== b.n) return null;
    if (c.n === 0) return k;
    const byAction = new Map(k.byAction);
    for (const r of this.#byAction.all(k.maxId) as { action: string; n: number }[])
      byAction.set(r.action, (byAction.get(r.action) ?? 0) + r.n);
    const vms = k.vms;
    for (const vm of this.#vms.all(k.maxId) as string[]) vms.add(vm);
    return {
      deletes: b.deletes,
      minId: b.minId,
      maxId: b.maxId ?? k.maxId,
      events: b.n,
      replays: k.replays + c.replays,
      byAction,
      vms,
    };
  }

  #countAll(b: Bounds): Kept {
    const below = Number.MIN_SAFE_INTEGER;
    const c = this.#counts.get(below) as { n: number; replays: number };
    const byAction = new Map<string, number>();
    for (const r of this.#byAction.all(below) as { action: string; n: number }[]) byAction.set(r.action, r.n);
    const vms = new Set(this.#vms.all(below) as string[]);
    return {
      deletes: b.deletes,
      minId: b.minId,
      maxId: b.maxId ?? below,
      events: c.n,
      replays: c.replays,
      byAction,
      vms,
    };
  }
}
