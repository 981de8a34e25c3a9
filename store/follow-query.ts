/**
 * The read behind `seawall events --follow` (the control socket's `follow`): the events stored
 * after an id, in the order they were stored, each answer saying how far it reached so that the
 * next starts there. Ids are given as events are answered and rise with them; a row can still be
 * committed after a higher one (a segment held through a store fault), so the daemon bounds each
 * answer below its lowest id not yet committed (`belowId`, store/write-ahead.ts
 * `uncommittedFrom`): every id an answer reaches is in the store or never will be.
 *
 * Bounded: an answer reads at most FOLLOW_SCAN_IDS ids of the primary key's range, whatever
 * matches, so a follower of a VM with no events, or a request from id 0 on a store of millions,
 * costs the reader thread one bounded range each time (`more` says to ask again at once). It
 * gives at most FOLLOW_MAX_LIMIT events, and stops sooner at ANSWER_MAX_BYTES of their JSON
 * (store/answer-bytes.ts): `through` is then the last event given.
 */
import type Database from 'better-sqlite3';
import { ANSWER_MAX_BYTES, AnswerBytes } from './answer-bytes.js';
import { type EventRow, type StoredEvent, storedEvent } from './rows.js';

/** Most ids one answer reads through (a range of the primary key: ~15 ms here for 100,000 rows). */
export const FOLLOW_SCAN_IDS = 100_000;
/** Most events one answer gives. */
export const FOLLOW_MAX_LIMIT = 10_000;

export interface FollowQuery {
  vm?: string;
  /** Only events of this time or later (ms since the epoch). */
  sinceMs?: number;
  /** The `through` of the last answer; without it, the answer only says where following starts. */
  afterId?: number;
  /** Most events (default and most FOLLOW_MAX_LIMIT). */
  limit?: number;
  /** Set by the daemon: ids from this one on may not all be committed yet (see the header). */
  belowId?: number;
}

export interface FollowAnswer {
  /** The matching events stored after `afterId`, in the order stored (by id). */
  events: StoredEvent[];
  /**
   * Every matching event up to this id has been given: the next `afterId`. Below the `afterId`
   * asked (0): the store holds no event of that id, so it is not the store followed.
   */
  through: number;
  /** Events may be stored past `through` already: ask again at once. */
  more: boolean;
  /**
   * When the store was created (ms since the epoch): another value is another store (the file
   * moved aside and a new one made), whose ids start again.
   */
  storeCreatedMs: number;
}

export class FollowQueries {
  readonly #maxId: Database.Statement;
  readonly #created: Database.Statement;
  readonly #all: Database.Statement;
  readonly #byVm: Database.Statement;

  constructor(db: Database.Database) {
    this.#maxId = db.prepare('SELECT COALESCE(MAX(id), 0) FROM event_rows').pluck();
    this.#created = db.prepare('SELECT MIN(applied_ms) FROM schema_version').pluck();
    // A range of the primary key, whatever the statistics say: the VM and the time are tested on
    // each row of it (`+vm`, `+time_ms`), not looked up by their indexes, which would read every
    // event the VM ever stored, or every one since the time, at each call.
    const range = 'id > @after AND id <= @end AND +time_ms >= @since';
    this.#all = db.prepare(`SELECT * FROM events WHERE ${range} ORDER BY id LIMIT @limit`);
    this.#byVm = db.prepare(`SELECT * FROM events WHERE ${range} AND +vm = @vm ORDER BY id LIMIT @limit`);
  }

  /**
   * Call inside a read transaction: the bounds and the rows are then of one snapshot. `maxBytes`:
   * the answer's bound on its events' JSON (the first event is given whatever its size).
   */
  follow(q: FollowQuery, maxBytes: number = ANSWER_MAX_BYTES): FollowAnswer {
    const storeCreatedMs = (this.#created.get() as number | null) ?? 0;
    const stored = this.#maxId.get() as number;
    const top = q.belowId === undefined ? stored : Math.min(stored, q.belowId - 1);
    const after = q.afterId;
    // Within one store the highest id never falls (retention keeps its row): past it, the id
    // followed was another store's (one restored from a copy, say) — said by `through` 0.
    if (after !== undefined && after > stored) return { events: [], through: 0, more: true, storeCreatedMs };
    if (after === undefined || after >= top)
      return { events: [], through: after ?? top, more: false, storeCreatedMs };
    const end = Math.min(top, after + FOLLOW_SCAN_IDS);
    const limit = Math.min(Math.max(1, q.limit ?? FOLLOW_MAX_LIMIT), FOLLOW_MAX_LIMIT);
    const params = { after, end, since: q.sinceMs ?? 0, limit };
    const rows = (
      q.vm === undefined ? this.#all.iterate(params) : this.#byVm.iterate({ ...params, vm: q.vm })
    ) as IterableIterator<EventRow>;
    const events: StoredEvent[] = [];
    const bytes = new AnswerBytes(maxBytes);
    let full = false;
    for (const row of rows) {
      const e = storedEvent(row);
      // Past the answer's bytes: it ends at the event before, and the next starts at this one.
      if (!bytes.fits(e)) {
        full = true;
        break;
      }
      events.push(e);
    }
    const last = events[events.length - 1];
    if (last !== undefined && (full || events.length === limit))
      return { events, through: last.id, more: true, storeCreatedMs };
    return { events, through: end, more: end < top, storeCreatedMs };
  }
}
