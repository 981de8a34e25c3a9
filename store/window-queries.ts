/**
 * The windows `seawall why` shows as evidence: the stored events of a rate window, the earlier
 * errors on a page, a VM's events in the period asked about. A VM's window is a range of the
 * (vm, time) index and the host's a range of the time index, each its own statement: one
 * statement for both (`@vm IS NULL OR vm = @vm`) can use neither index for the VM, and read every
 * VM's rows of the range. Each window reads at most WINDOW_SCAN_ROWS rows, the newest: a window
 * over a VM's whole history (a repeated page) costs no more than one of a few seconds.
 */
import type Database from 'better-sqlite3';

/** Most rows of its scope one window reads (the newest); a count that reached it is a lower bound. */
export const WINDOW_SCAN_ROWS = 10_000;

/** A stretch of stored events before (and up to) one event, as a rate window or a page's history sees it. */
export interface WindowQuery {
  /** Only this VM's events (scope vm, page); all VMs' when absent (scope host). */
  vm?: string;
  /** Only events on this page (hex as stored). */
  gpa?: string;
  /** Exclusive lower bound on time (ms). */
  afterMs: number;
  /** The event the window ends at: events up to its time, and at that time only those with a smaller id. */
  at: { timeMs: number; id: number };
  /** Include the event `at` itself. */
  inclusive: boolean;
  /** Most events returned (the newest); the count covers them all (up to WINDOW_SCAN_ROWS). */
  limit: number;
}

/** Columns of an event enough to show it as evidence. */
export interface WindowEvent {
  id: number;
  timeMs: number;
  vm: string;
  kind: string;
  severity: string;
  gpa: string | null;
}

export interface WindowAnswer {
  /** Events of the window, or at least this many when `atLeast`. */
  count: number;
  /** The window holds more rows than were read (WINDOW_SCAN_ROWS): older ones may match too. */
  atLeast: boolean;
  /** The newest `limit` of them, oldest first. */
  events: WindowEvent[];
}

interface Scoped {
  rows: Database.Statement;
  count: Database.Statement;
}

export class WindowQueries {
  readonly #vm: Scoped;
  readonly #host: Scoped;

  constructor(db: Database.Database) {
    // `time_ms <= @t` is implied by the test after it, and makes the window's end a bound of the
    // index range rather than a filter.
    const range =
      'time_ms > @after AND time_ms <= @t AND (time_ms < @t OR (time_ms = @t AND (id < @id OR (@incl = 1 AND id = @id))))';
    const scoped = (scope: string): Scoped => {
      const newest = (cols: string): string =>
        `SELECT ${cols} FROM events WHERE ${scope}${range} ORDER BY time_ms DESC, id DESC LIMIT @scan`;
      return {
        rows: db.prepare(
          `SELECT id, time_ms AS timeMs, vm, kind, severity, gpa FROM (${newest('id, time_ms, vm, kind, severity, gpa')}) ` +
            'WHERE @gpa IS NULL OR gpa = @gpa ORDER BY timeMs DESC, id DESC LIMIT @limit',
        ),
        count: db.prepare(
          'SELECT COUNT(*) AS scanned, COALESCE(SUM(@gpa IS NULL OR gpa = @gpa), 0) AS n ' +
            `FROM (${newest('gpa')})`,
        ),
      };
    };
    this.#vm = scoped('vm = @vm AND ');
    this.#host = scoped('');
  }

  /** The statements of a scope, for tests of their plans. */
  statements(scope: 'vm' | 'host'): Scoped {
    return scope === 'vm' ? this.#vm : this.#host;
  }

  /** The events of a window (newest `limit`, returned oldest first) and how many it holds. */
  window(q: WindowQuery, limit: number): WindowAnswer {
    const params = {
      gpa: q.gpa ?? null,
      after: q.afterMs,
      t: q.at.timeMs,
      id: q.at.id,
      incl: q.inclusive ? 1 : 0,
      scan: WINDOW_SCAN_ROWS,
    };
    const s = q.vm === undefined ? this.#host : this.#vm;
    const scoped = q.vm === undefined ? params : { ...params, vm: q.vm };
    const events = (s.rows.all({ ...scoped, limit }) as WindowEvent[]).reverse();
    const { scanned, n } = s.count.get(scoped) as { scanned: number; n: number };
    return { count: n, atLeast: scanned >= WINDOW_SCAN_ROWS, events };
  }
}
