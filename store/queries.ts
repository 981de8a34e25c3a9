/**
 * The store's read side: what `seawall events`, `vms`, `poison` and `status` show, and the
 * start-up rebuild of the policy's rate and repeat-page state. Statements are prepared once.
 * Reads run on the daemon's thread between batches; each is bounded by a limit.
 *
 * Longer than 350 lines: every read query of the store (events, pages, VMs, totals, why, paging)
 * shares one set of prepared statements, built once per connection.
 */
import type Database from 'better-sqlite3';
import type { PolicyEvent } from '../policies/index.js';
import { ANSWER_MAX_BYTES, AnswerBytes } from './answer-bytes.js';
import { EventTotals } from './event-totals.js';
import { type FollowAnswer, FollowQueries, type FollowQuery } from './follow-query.js';
import {
  type EventRow,
  type PolicyEventRow,
  parseHex64,
  policyEvent,
  type StoredEvent,
  storedEvent,
} from './rows.js';
import { WhyQueries } from './why-queries.js';
import { WINDOW_SCAN_ROWS, type WindowAnswer, WindowQueries, type WindowQuery } from './window-queries.js';

export type { WindowAnswer, WindowEvent, WindowQuery } from './window-queries.js';

/** Most rows a single query returns, whatever the caller asks. */
export const MAX_QUERY_LIMIT = 10_000;
/** Most events `recentPolicyEvents` replays into the policy state by default. */
export const DEFAULT_REBUILD_LIMIT = 200_000;

export interface EventQuery {
  vm?: string;
  /** Inclusive lower bound on event time (ms since the epoch). */
  sinceMs?: number;
  /** Most rows (the newest ones); default 100, at most MAX_QUERY_LIMIT. */
  limit?: number;
  /** Only events older than this one (time, then id): the next page back from a previous answer. */
  before?: { timeMs: number; id: number };
}

/** Where a page of poisoned pages starts: after this (VM, GPA) in the listing's order. */
export interface PoisonCursor {
  vm: string;
  gpa: string;
}

export interface PoisonedPage {
  vm: string;
  /** Guest physical page, `0x` + 16 hex digits. */
  gpa: string;
  firstSeenMs: number;
  lastSeenMs: number;
  count: number;
}

export interface VmSummary {
  vm: string;
  /** Events still held (retention may have removed older ones). */
  events: number;
  firstSeenMs: number | null;
  lastSeenMs: number | null;
  poisonedPages: number;
  /**
   * The newer of the decision of the VM's newest decided event and its newest kill or migration
   * started (a kill a refused migration's onFailure asked for is newer than the decision to migrate).
   */
  lastAction: string | null;
  /** A plugin session for this VM is open now (as the caller of `vms` says). */
  connected: boolean;
}

export interface StoreTotals {
  events: number;
  replays: number;
  vms: number;
  poisonedPages: number;
  actions: number;
  /** Decided events by action. */
  byAction: Record<string, number>;
  oldestMs: number | null;
  newestMs: number | null;
  /** Pages in use × page size (retention's maxBytes bounds the events' share of it). */
  bytes: number;
}

export interface StoredAction {
  id: number;
  timeMs: number;
  vm: string;
  action: string;
  rule: string | null;
  outcome: string;
  detail: string | null;
  updatedMs: number;
}

const clampLimit = (n: number | undefined, dflt: number): number =>
  Math.max(1, Math.min(MAX_QUERY_LIMIT, Math.floor(n ?? dflt)));

/** Bytes in the pages of `db` holding data (excludes free pages); retention bounds the events' share. */
export function usedBytes(db: Database.Database): number {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.pragma('page_count', { simple: true }) as number;
  return (pages - freePages(db)) * pageSize;
}

/** Pages of `db` freed and not yet handed back to the file system. */
export function freePages(db: Database.Database): number {
  return db.pragma('freelist_count', { simple: true }) as number;
}

export class StoreQueries {
  /** `events`: of all VMs or one, the first page or one before a cursor. */
  readonly #events: Readonly<Record<'first' | 'before' | 'byVmFirst' | 'byVmBefore', Database.Statement>>;
  readonly #poisonFirst: Database.Statement;
  readonly #poisonAfter: Database.Statement;
  readonly #poisonByVmFirst: Database.Statement;
  readonly #poisonByVmAfter: Database.Statement;
  readonly #vmPage: Database.Statement;
  readonly #vmRow: Database.Statement;
  readonly #eventTotals: EventTotals;
  readonly #follow: FollowQueries;
  readonly #counts: Database.Statement;
  readonly #rebuild: Database.Statement;
  readonly #actions: Database.Statement;
  readonly #actionEvents: Database.Statement;
  readonly #windows: WindowQueries;
  readonly #actionFor: Database.Statement;
  readonly #reusedBy: Database.Statement;
  readonly #actionBefore: Database.Statement;
  readonly #policySource: Database.Statement;
  readonly #before: Database.Statement;
  readonly #db: Database.Database;
  /** `seawall why`'s reads beside an event's own action. */
  readonly why: WhyQueries;
  readonly #onError: (err: unknown) => void;

  constructor(db: Database.Database, onError: (err: unknown) => void) {
    this.#db = db;
    this.#onError = onError;
    // Newest first with a limit, reversed by the caller: the last N events, oldest first.
    // `@bt`/`@bi` page backwards from a previous answer's oldest row; (time_ms, id) orders rows.
    // The first page and the next ones are statements of their own: `@bt IS NULL OR time_ms < @bt
    // OR …` bounds no range of the index, so each page read every row newer than its cursor.
    // `time_ms <= @bt` is implied by the test after it, and makes the cursor the range's end.
    const newest = 'ORDER BY time_ms DESC, id DESC LIMIT @limit';
    const before = 'AND time_ms <= @bt AND (time_ms < @bt OR id < @bi)';
    const events = (where: string) => db.prepare(`SELECT * FROM events WHERE ${where} ${newest}`);
    this.#events = {
      first: events('time_ms >= @since'),
      before: events(`time_ms >= @since ${before}`),
      byVmFirst: events('vm = @vm AND time_ms >= @since'),
      byVmBefore: events(`vm = @vm AND time_ms >= @since ${before}`),
    };
    const poisonCols =
      'SELECT vm, gpa, first_seen_ms AS firstSeenMs, last_seen_ms AS lastSeenMs, count FROM poisoned_pages';
    // Keyset pagination on the primary key: each page is an index range scan, however deep. The
    // first page and the next ones are statements of their own: `@av IS NULL OR (vm, gpa) > …`
    // is no range SQLite can seek to, and scanned the table from its start for every page.
    this.#poisonFirst = db.prepare(`${poisonCols} ORDER BY vm, gpa LIMIT @limit`);
    this.#poisonAfter = db.prepare(
      `${poisonCols} WHERE (vm, gpa) > (@av, @ag) ORDER BY vm, gpa LIMIT @limit`,
    );
    this.#poisonByVmFirst = db.prepare(`${poisonCols} WHERE vm = @vm ORDER BY gpa LIMIT @limit`);
    this.#poisonByVmAfter = db.prepare(
      `${poisonCols} WHERE vm = @vm AND gpa > @ag ORDER BY gpa LIMIT @limit`,
    );
    // The VM ids after `after`, in SQLite's order of text (its bytes), from the events, the
    // poisoned pages and the connected VMs (JSON): a merge of three ordered walks, each by its index,
    // that stops at the page's end. It walks the index entries of the page's VMs, as their counts do.
    this.#vmPage = db
      .prepare(
        'SELECT vm FROM events WHERE vm > :after UNION SELECT vm FROM poisoned_pages WHERE vm > :after ' +
          'UNION SELECT value FROM json_each(:connected) WHERE value > :after ORDER BY 1 LIMIT :limit',
      )
      .pluck();
    // The last action: the newer of the VM's newest decision and its newest kill or migration
    // started (one a migration's onFailure asked for comes after the decision to migrate).
    const lastOf = (table: string, where: string, o: number): string =>
      `SELECT * FROM (SELECT action, time_ms AS t, ${o} AS o FROM ${table} WHERE vm = :vm ${where} ` +
      'ORDER BY time_ms DESC, id DESC LIMIT 1)';
    this.#vmRow = db.prepare(
      'SELECT COUNT(*) AS events, MIN(time_ms) AS firstSeenMs, MAX(time_ms) AS lastSeenMs, ' +
        '(SELECT COUNT(*) FROM poisoned_pages WHERE vm = :vm) AS poisonedPages, ' +
        `(SELECT action FROM (${lastOf('events', 'AND action IS NOT NULL', 0)} UNION ALL ${lastOf('actions', '', 1)}) ` +
        'ORDER BY t DESC, o DESC LIMIT 1) AS lastAction FROM events WHERE vm = :vm',
    );
    this.#eventTotals = new EventTotals(db);
    this.#follow = new FollowQueries(db);
    this.#counts = db.prepare(
      'SELECT (SELECT COUNT(*) FROM poisoned_pages) AS pages, (SELECT COUNT(*) FROM actions) AS actions',
    );
    this.#rebuild = db.prepare(`
      SELECT * FROM (
        SELECT id, time_ms, vm, labels, vcpu, kind, esr, fsc_class, abort, severity, gpa, sigbus_code
        FROM events WHERE time_ms >= ? ORDER BY time_ms DESC, id DESC LIMIT ?
      ) ORDER BY time_ms, id`);
    this.#actions = db.prepare(
      'SELECT id, time_ms AS timeMs, vm, action, rule, outcome, detail, updated_ms AS updatedMs FROM actions ' +
        'WHERE (@vm IS NULL OR vm = @vm) ORDER BY time_ms DESC, id DESC LIMIT @limit',
    );
    // The events a VM was acted on for: a kill or migration, or any rule other than the default;
    // among the VM's newest @scan events of the period only (as store/window-queries.ts reads a
    // window), so that a VM whose every event the default rule answered costs a bounded range of
    // its index, not its whole history. Then the full rows of the newest @limit of them.
    const byTime = 'ORDER BY time_ms DESC, id DESC';
    this.#actionEvents = db.prepare(
      `SELECT * FROM events WHERE id IN (SELECT id FROM (SELECT id, time_ms, action, rule FROM events ` +
        `WHERE vm = @vm AND time_ms >= @since ${byTime} LIMIT @scan) WHERE action IN ('kill', 'migrate') ` +
        `OR (rule IS NOT NULL AND rule <> 'default') ${byTime} LIMIT @limit) ${byTime}`,
    );
    this.#windows = new WindowQueries(db);
    this.why = new WhyQueries(db);
    const actionCols =
      'SELECT id, time_ms AS timeMs, vm, action, rule, outcome, detail, updated_ms AS updatedMs FROM actions';
    // An event's own action (`actionFor`): the first of its kind with the event's (boot, session,
    // seq) started at or after the event arrived, unless a later event of that seq arrived by then.
    this.#actionFor = db.prepare(
      `${actionCols} WHERE boot_id = @boot AND session_id = @session AND seq = @seq AND action = @action ` +
        'AND time_ms >= @t ORDER BY id LIMIT 1',
    );
    this.#reusedBy = db
      .prepare(
        'SELECT 1 FROM (SELECT boot_id, session_id, seq FROM events WHERE vm = @vm AND time_ms >= @t ' +
          'AND time_ms < @until AND (time_ms > @t OR id > @id) ORDER BY time_ms, id LIMIT @scan) ' +
          'WHERE boot_id = @boot AND session_id = @session AND seq = @seq LIMIT 1',
      )
      .pluck();
    this.#actionBefore = db.prepare(
      `${actionCols} WHERE vm = ? AND action = ? AND time_ms <= ? ORDER BY time_ms DESC, id DESC LIMIT 1`,
    );
    this.#policySource = db.prepare('SELECT source FROM policies WHERE version = ?');
    this.#before = db.prepare(`
      SELECT * FROM (
        SELECT id, time_ms, vm, labels, vcpu, kind, esr, fsc_class, abort, severity, gpa, sigbus_code
        FROM events WHERE time_ms >= @from AND (time_ms < @bt OR (time_ms = @bt AND id < @bi))
        ORDER BY time_ms DESC, id DESC LIMIT @limit
      ) ORDER BY time_ms, id`);
  }

  /**
   * The newest `limit` events of `vm` since `sinceMs` that led to an action (kill, migrate, or a
   * rule other than the default), oldest first, among the VM's newest WINDOW_SCAN_ROWS events of
   * the period (older ones are not searched: `window`'s count of the period says `atLeast` then);
   * `more` when older ones among those match too.
   */
  actionEvents(vm: string, sinceMs: number, limit: number): { events: StoredEvent[]; more: boolean } {
    const n = clampLimit(limit, 20);
    const params = { vm, since: sinceMs, limit: n + 1, scan: WINDOW_SCAN_ROWS };
    const rows = this.#actionEvents.all(params) as EventRow[];
    const more = rows.length > n;
    return { events: rows.slice(0, n).reverse().map(storedEvent), more };
  }

  /**
   * The events of a window (newest `limit`, returned oldest first) and how many it holds: at
   * least `count` when `atLeast` (store/window-queries.ts reads a bounded share of it).
   */
  window(q: WindowQuery): WindowAnswer {
    return this.#windows.window(q, clampLimit(q.limit, 20));
  }

  /** The window statements of a scope, for tests of their plans. */
  windowStatements(scope: 'vm' | 'host'): { rows: Database.Statement; count: Database.Statement } {
    return this.#windows.statements(scope);
  }

  /**
   * The action `e` asked for, if it has one of its own. An action row names its event by boot,
   * session and seq, and a plugin may reuse a seq once it was answered (docs/protocol.md), so
   * several events, and their actions, can share them. An action starts (its `time_ms`) when its
   * event is decided, after the event arrived and before its verdict is written; the seq's next
   * event arrives after that verdict. Rows of one seq therefore alternate, in time: an event, then
   * its action (if it has one: a decision folded into one under way has none), then the next event.
   * The rule: `e`'s action is the first action of its kind and seq started at or after `e` arrived
   * (time_ms, by ms), unless an event of that seq stored after `e` arrived before it started: that
   * action is the later event's, and `e` has none of its own. Times are in ms: an event of the seq
   * that arrived in the millisecond the action started does not take it from `e` (the seq's events
   * within one millisecond are told apart by no time, and the later one is then shown that action
   * as its own too). The look for a later event reads at most WINDOW_SCAN_ROWS of the VM's events;
   * past them, the action is taken as `e`'s.
   */
  actionFor(
    e: Pick<StoredEvent, 'bootId' | 'sessionId' | 'seq' | 'timeMs' | 'id' | 'vm' | 'action'>,
  ): StoredAction | undefined {
    const key = { boot: e.bootId, session: e.sessionId, seq: e.seq };
    const a = this.#actionFor.get({ ...key, action: e.action, t: e.timeMs }) as StoredAction | undefined;
    if (a === undefined) return undefined;
    const reused = this.#reusedBy.get({
      ...key,
      vm: e.vm,
      t: e.timeMs,
      id: e.id,
      until: a.timeMs,
      scan: WINDOW_SCAN_ROWS,
    });
    return reused === undefined ? a : undefined;
  }

  /** The newest `action` of `vm` started at or before `timeMs`: the one a later decision was folded into. */
  actionBefore(vm: string, action: string, timeMs: number): StoredAction | undefined {
    return this.#actionBefore.get(vm, action, timeMs) as StoredAction | undefined;
  }

  /** The YAML of a policy version that decided events, if it was recorded. */
  policySource(version: string): string | undefined {
    return (this.#policySource.get(version) as { source: string } | undefined)?.source;
  }

  /**
   * Events in [beforeMs - windowMs, beforeMs) as the policy saw them, oldest first, at most
   * `limit` (the newest): the rate and repeat state just before an event at `beforeMs`. With
   * `beforeId`, the stored event's id, the events of that same millisecond stored before it
   * count too: the daemon had seen them when it decided it (ids follow the order of decisions).
   */
  policyEventsBefore(
    beforeMs: number,
    windowMs: number,
    limit: number = DEFAULT_REBUILD_LIMIT,
    beforeId: number | null = null,
  ): PolicyEvent[] {
    return this.#policyEvents(
      this.#before.iterate({
        from: beforeMs - windowMs,
        bt: beforeMs,
        bi: beforeId ?? 0,
        limit: Math.max(1, Math.floor(limit)),
      }),
    );
  }

  /**
   * The newest `limit` events matching `q`, returned oldest first; fewer when their JSON would pass
   * `maxBytes` (store/answer-bytes.ts): the older ones are the next page back, `before` the oldest
   * given. At least one is given whatever its size.
   */
  events(q: EventQuery = {}, maxBytes: number = ANSWER_MAX_BYTES): StoredEvent[] {
    const { statement, params } = this.#eventsStatement(q);
    const rows = statement.iterate(params) as IterableIterator<EventRow>;
    // Newest first: the answer keeps the newest rows that fit.
    const events: StoredEvent[] = [];
    const bytes = new AnswerBytes(maxBytes);
    for (const row of rows) {
      const e = storedEvent(row);
      if (!bytes.fits(e)) break;
      events.push(e);
    }
    return events.reverse();
  }

  #eventsStatement(q: EventQuery): { statement: Database.Statement; params: Record<string, unknown> } {
    const params: Record<string, unknown> = { since: q.sinceMs ?? 0, limit: clampLimit(q.limit, 100) };
    if (q.vm !== undefined) params.vm = q.vm;
    const s = this.#events;
    if (q.before === undefined) return { statement: q.vm === undefined ? s.first : s.byVmFirst, params };
    params.bt = q.before.timeMs;
    params.bi = q.before.id;
    return { statement: q.vm === undefined ? s.before : s.byVmBefore, params };
  }

  /** The statement of `actionEvents`, for tests of its plan. */
  actionEventsStatement(): Database.Statement {
    return this.#actionEvents;
  }

  /** The statements of `events`, for tests of their plans. */
  eventStatements(): Readonly<Record<'first' | 'before' | 'byVmFirst' | 'byVmBefore', Database.Statement>> {
    return this.#events;
  }

  /** The events stored after `q.afterId`, for `seawall events --follow` (store/follow-query.ts). */
  follow(q: FollowQuery, maxBytes: number = ANSWER_MAX_BYTES): FollowAnswer {
    if (!this.#db.inTransaction) return this.#db.transaction(() => this.follow(q, maxBytes))();
    return this.#follow.follow(q, maxBytes);
  }

  /**
   * Poisoned pages, of one VM or all, ordered by VM and address: at most `limit` (default and most
   * MAX_QUERY_LIMIT) after `after`. A caller that gets a full page asks again from its last row.
   */
  poisonedPages(vm?: string, limit?: number, after?: PoisonCursor): PoisonedPage[] {
    const n = clampLimit(limit, MAX_QUERY_LIMIT);
    const rows =
      vm === undefined
        ? after === undefined
          ? this.#poisonFirst.all({ limit: n })
          : this.#poisonAfter.all({ limit: n, av: after.vm, ag: after.gpa })
        : after === undefined
          ? this.#poisonByVmFirst.all({ limit: n, vm })
          : this.#poisonByVmAfter.all({ limit: n, vm, ag: after.gpa });
    return rows as PoisonedPage[];
  }

  /** The statements that page through poisoned pages, for tests of their plans. */
  poisonStatements(): Record<'first' | 'after' | 'byVmFirst' | 'byVmAfter', Database.Statement> {
    return {
      first: this.#poisonFirst,
      after: this.#poisonAfter,
      byVmFirst: this.#poisonByVmFirst,
      byVmAfter: this.#poisonByVmAfter,
    };
  }

  /** The statements of `vms`, for tests of their plans. */
  vmStatements(): Record<'page' | 'row', Database.Statement> {
    return { page: this.#vmPage, row: this.#vmRow };
  }

  /**
   * The VMs the store knows (from events or poisoned pages) and those of `connected`, in the order
   * of their ids (SQLite's, by bytes): at most `limit` (default and bound MAX_QUERY_LIMIT) after
   * `after`, each saying whether it is in `connected`. A caller that gets a full page asks again
   * from its last VM. A page costs its VMs' index entries, not the store's.
   */
  vms(connected: readonly string[] = [], limit?: number, after = ''): VmSummary[] {
    const ids = this.#vmPage.all({
      after,
      connected: JSON.stringify(connected),
      limit: clampLimit(limit, MAX_QUERY_LIMIT),
    }) as string[];
    const live = new Set(connected);
    return ids.map((vm) => {
      const row = this.#vmRow.get({ vm }) as Omit<VmSummary, 'vm' | 'connected'>;
      return { vm, ...row, connected: live.has(vm) };
    });
  }

  /** One snapshot's figures: the reader thread reads them in a transaction; elsewhere they take one. */
  totals(): StoreTotals {
    if (!this.#db.inTransaction) return this.#db.transaction(() => this.totals())();
    const c = this.#counts.get() as { pages: number; actions: number };
    return {
      ...this.#eventTotals.read(),
      poisonedPages: c.pages,
      actions: c.actions,
      bytes: this.usedBytes(),
    };
  }

  /** Actions taken (kill, migrate …), newest first. */
  actions(vm?: string, limit?: number): StoredAction[] {
    return this.#actions.all({ vm: vm ?? null, limit: clampLimit(limit, 100) }) as StoredAction[];
  }

  /**
   * Events since `sinceMs`, oldest first, as the policy saw them — for `PolicyState.observe` at
   * start so rate windows and repeat pages survive a restart. At most `limit` (the newest).
   * A row that cannot be decoded is skipped and reported, never fatal.
   */
  recentPolicyEvents(sinceMs: number, limit: number = DEFAULT_REBUILD_LIMIT): PolicyEvent[] {
    return this.#policyEvents(this.#rebuild.iterate(sinceMs, Math.max(1, Math.floor(limit))));
  }

  /**
   * What the policy state keeps of the newest `limit` events since `sinceMs` — VM, time, GPA —
   * handed to `visit` oldest first, row by row: the start-up rebuild of `recentPolicyEvents`
   * without building (and parsing labels and ESRs into) a PolicyEvent per row, and without
   * sorting the window: the newest `limit`th row is found on the time index, then the rows from
   * it are read in index order. Returns how many rows were visited.
   */
  recentObservations(
    sinceMs: number,
    visit: (vm: string, timeMs: number, gpa: bigint | null) => void,
    limit: number = DEFAULT_REBUILD_LIMIT,
  ): number {
    const from = this.#db
      .prepare(
        'SELECT time_ms, id FROM events WHERE time_ms >= ? ORDER BY time_ms DESC, id DESC LIMIT 1 OFFSET ?',
      )
      .raw()
      .get(sinceMs, Math.max(1, Math.floor(limit)) - 1) as [number, number] | undefined;
    const [t, id] = from ?? [sinceMs, Number.MIN_SAFE_INTEGER];
    const rows = this.#db
      .prepare(
        'SELECT vm, time_ms, gpa FROM events WHERE time_ms >= ? AND (time_ms > ? OR id >= ?) ORDER BY time_ms, id',
      )
      .raw()
      .iterate(t, t, id) as IterableIterator<[string, number, string | null]>;
    // Pages repeat: each distinct GPA text becomes a bigint once.
    const pages = new Map<string, bigint>();
    let n = 0;
    for (const [vm, time, gpaText] of rows) {
      let gpa: bigint | null = null;
      if (gpaText !== null) {
        gpa = pages.get(gpaText) ?? null;
        if (gpa === null) {
          gpa = parseHex64(gpaText);
          pages.set(gpaText, gpa);
        }
      }
      visit(vm, time, gpa);
      n++;
    }
    return n;
  }

  #policyEvents(rows: Iterable<unknown>): PolicyEvent[] {
    const out: PolicyEvent[] = [];
    // Labels repeat per VM: parse each distinct JSON text once and share the frozen object.
    const labels = new Map<string, Readonly<Record<string, string>>>();
    for (const row of rows as Iterable<PolicyEventRow>) {
      try {
        const e = policyEvent(row);
        const shared = labels.get(row.labels);
        if (shared) e.vm = { id: e.vm.id, labels: shared };
        else labels.set(row.labels, e.vm.labels);
        out.push(e);
      } catch (err) {
        this.#onError(err);
      }
    }
    return out;
  }

  /** Bytes in pages holding data (excludes free pages); retention bounds the events' share. */
  usedBytes(): number {
    return usedBytes(this.#db);
  }
}
