/**
 * The event store: one SQLite file (`<stateDir>/events.sqlite`) in WAL mode with
 * `synchronous=NORMAL`. A committed transaction is in the WAL (the OS page cache) before `commit`
 * returns, so it survives kill -9 of the daemon; only a power loss or kernel crash can take the
 * last transactions since the previous checkpoint — the price of keeping an fsync off every verdict.
 *
 * Writes on the event path never throw: a failure is reported to `onError(op, err)` (the service
 * counts it as `seawall_store_errors_total{op}` and logs it) and the verdict goes out regardless.
 * Every statement is prepared once, at open.
 *
 * Longer than 350 lines: the one class that owns the connection, the ids it gives and every write
 * the daemon makes through it; split, each part would need the others' private state.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { EventRecord, SessionInfo, SessionOutcome } from '../events/index.js';
import { AwaitingApplied } from './awaiting-applied.js';
import { openDatabase, START_BUSY_TIMEOUT_MS, statIno, storeOpenError, withBusyWait } from './connection.js';
import { StoreError, type StoreOp } from './errors.js';
import { RecordRow } from './event-columns.js';
import { PendingKeys } from './held-rows.js';
import { type AppendResult, eventWriter } from './inserts.js';
import { StoreQueries } from './queries.js';
import { type EventValues, MAX_ROW_ID, type ReplayKey } from './rows.js';
import { LEGACY_KEY_INDEX, migrate } from './schema.js';
import { registerBoot, storedU64 } from './stored-values.js';
import type { WrittenAhead } from './update-lines.js';
import { type ActionUpdate, type StoreUpdate, sessionRow, updateOp } from './updates.js';

export type { AppendResult, StoreRow } from './inserts.js';
export type { ReplayKey } from './rows.js';

/** A recorded action, to give its outcome to `EventStore.actionEnded`. */
export type ActionRecord = Readonly<ActionUpdate>;

export interface StoreOptions {
  /** The database file; `:memory:` is refused (the store exists to survive restarts). */
  path: string;
  /** Failures on the event path, by operation; never thrown. */
  onError?: (op: StoreOp, err: unknown) => void;
  /** Distinguishes this daemon run's session ids from earlier runs' (default: a random UUID). */
  bootId?: string;
  now?: () => number;
}

/** One action taken on a VM (kill, migrate) and how it ended. */
export interface ActionInput {
  vm: string;
  action: string;
  rule: string | null;
  /** e.g. `requested`, `done`, `failed`, `refused`, `timed_out`. */
  outcome: string;
  detail?: string | null;
  timeMs?: number;
  /** The event that asked for it (its plugin session and seq in this daemon run), when known. */
  event?: { sessionId: bigint; seq: number } | null;
}

/** Whether a replay's event is stored: [plugin time (as stored: store/stored-values.ts), VM, seq]. */
export const REPLAY_LOOKUP_SQL =
  'SELECT 1 FROM event_rows WHERE plugin_time_ns = ? AND +vm = ? AND seq = ? LIMIT 1';

export class EventStore {
  readonly path: string;
  readonly bootId: string;
  /** The schema version the file had when opened (0 for a new file). */
  readonly openedVersion: number;
  #db: Database.Database;
  /** The open file's inode: a different one at `path` means the file was removed or replaced. */
  #ino = 0;
  /** Bumped by every reopen, so holders of prepared statements (retention) prepare again. */
  generation = 0;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  readonly #now: () => number;
  #appendRows!: ReturnType<typeof eventWriter>;
  #reported!: Database.Statement;
  #leftOpen!: Database.Statement;
  #maxIds!: Database.Statement;
  #queries!: StoreQueries;
  /** Runs before every read (the write-ahead layer flushes its pending rows there). */
  beforeRead: () => void = () => {};
  /**
   * Where APPLIED results and session, action and policy rows go. The write-ahead layer sends
   * them with its next hand-over, after the event rows queued before them (which an APPLIED
   * result must find), so the event loop never waits for the write lock for them; without it
   * they are written here at once.
   */
  update: (u: StoreUpdate) => void = (u) => this.updateHere(u);
  /** The last action id given; ids are given before their rows are written. */
  #actionId = 0;
  /** The last event row id given (EventParams `id`): past every row stored or written ahead. */
  #eventId = 0;
  /** Events with a verdict out, by session and seq: what an APPLIED updates. */
  readonly #awaiting = new AwaitingApplied();
  #closed = false;

  /** Opens (creating or upgrading) the store. Throws StoreError: OPEN, SCHEMA_TOO_NEW, MIGRATION. */
  constructor(opts: StoreOptions) {
    if (opts.path === ':memory:' || opts.path === '') {
      throw new StoreError('SEAWALL_STORE_INVALID_OPTION', 'the event store needs a file path', {
        path: opts.path,
      });
    }
    this.path = opts.path;
    this.bootId = opts.bootId ?? randomUUID();
    this.#onError = opts.onError ?? (() => {});
    this.#now = opts.now ?? Date.now;
    this.#db = openDatabase(opts.path);
    this.openedVersion = this.whileStarting(() => {
      let version: number;
      try {
        version = migrate(this.#db, opts.path, this.#now());
        this.#prepare();
      } catch (err) {
        this.#db.close();
        throw storeOpenError(opts.path, err);
      }
      this.#closeLeftOpen();
      return version;
    });
  }

  /**
   * Runs `fn`, a step of the daemon's start that writes (opening, recovering the write-ahead
   * files), waiting for a write lock another process holds up to `START_BUSY_TIMEOUT_MS` rather
   * than the run time's 250 ms.
   */
  whileStarting<T>(fn: () => T): T {
    return withBusyWait(this.#db, START_BUSY_TIMEOUT_MS, fn);
  }

  /** Sessions a previous run left open were ended by its death: not live, and retention prunes them. */
  #closeLeftOpen(): void {
    this.#guard('session', () => this.#leftOpen.run(this.#now(), this.bootId));
  }

  /** Ids given from now on go past every id the file holds (a reopened file may be another). */
  #syncIds(): void {
    const [actions, events] = this.#maxIds.get() as [number, number];
    const path = this.path;
    const why = `${path} holds an event id (${events}) past any seawall gives: move the file aside`;
    if (events > MAX_ROW_ID) throw new StoreError('SEAWALL_STORE_OPEN', why, { path });
    this.#actionId = Math.max(this.#actionId, actions);
    this.#eventId = Math.max(this.#eventId, events);
  }

  /** Numbers this daemon's boot, and prepares every statement on the current connection. */
  #prepare(): void {
    const db = this.#db;
    this.#ino = statIno(this.path);
    registerBoot(db, this.path, this.bootId);
    // A plugin that lost its connection (a daemon crash between storing a batch and writing its
    // verdicts) falls back and later reports the same exit as a REPLAY, to a daemon with another
    // boot id: the same VM, seq and plugin time identify it.
    // One index lookup (events_plugin_time; exit times hardly repeat): a flood of replays costs a
    // lookup each, not a scan of every event the VM stored in the window. `+vm`: never by
    // events_vm_time, which would read every event of the VM.
    this.#reported = db.prepare(REPLAY_LOOKUP_SQL);
    this.#appendRows = eventWriter(db, this.bootId);
    this.#leftOpen = db.prepare(
      "UPDATE sessions SET closed_ms = ?, outcome = 'disconnect', detail = 'daemon restarted' " +
        'WHERE boot_id <> ? AND closed_ms IS NULL',
    );
    const max = (table: string) => `(SELECT COALESCE(MAX(id), 0) FROM ${table})`;
    this.#maxIds = db.prepare(`SELECT ${max('actions')}, ${max('event_rows')}`).raw();
    this.#syncIds();
    this.#queries = new StoreQueries(db, (err) => this.#onError('query', err));
  }

  /**
   * True when `path` no longer names the open file (its directory or the file was removed or
   * replaced): rows written now would go to a file nobody will read again.
   */
  lost(): boolean {
    return statIno(this.path) !== this.#ino;
  }

  /**
   * Opens `path` again — a new, empty store when the old file is gone — after `lost()`. Throws
   * StoreError (OPEN, MIGRATION) when it still cannot be opened; the old connection is closed.
   */
  reopen(): void {
    try {
      this.#db.close();
    } catch {
      // the old file may be gone with its directory: nothing to flush into it
    }
    const db = openDatabase(this.path);
    this.#db = db;
    try {
      migrate(db, this.path, this.#now());
      this.#prepare();
    } catch (err) {
      db.close();
      throw storeOpenError(this.path, err);
    }
    this.recovered(); // nothing of an older seawall's comes to a file opened at run time
    this.generation++;
  }

  /**
   * Stores one pipeline batch in one transaction, before its verdicts are written, each event
   * under a row id given now (`appendRows` with the same rows again is what is idempotent). On
   * failure the whole batch is rolled back, `onError('append')` is called and null returned.
   */
  append(batch: readonly EventRecord[]): AppendResult | null {
    if (batch.length === 0) return { inserted: 0, duplicates: 0 };
    return this.#guard('append', () => this.#appendRows(this.rowsOf(batch).map((r) => r.values)));
  }

  /**
   * The rows a batch stores. A replay already recorded (same VM, seq and plugin time: reported
   * again after a daemon crash) gets no row and is marked `duplicate`; `pending` says whether a
   * row not yet in the database (the write-ahead queue) has that key. So does a row earlier in
   * the same batch: a plugin whose deadline passed before the daemon read an event sends its
   * replay right behind it, and one tick may decide the one and receive the other.
   */
  rowsOf(batch: readonly EventRecord[], pending: (key: ReplayKey) => boolean = () => false): RecordRow[] {
    const storedNs = process.hrtime.bigint();
    const rows: RecordRow[] = [];
    // Only a batch of more than one row, one of them a replay, can hold a replay of its own rows.
    const keys = batch.length > 1 && batch.some((r) => r.replay) ? new PendingKeys() : null;
    for (const r of batch) {
      const key: ReplayKey = { vm: r.event.vm.id, seq: r.msg.seq, time: r.msg.timeNs };
      if (r.replay && (keys?.has(key) || pending(key) || this.#isReported(key))) {
        r.duplicate = true;
        continue;
      }
      keys?.add(key);
      rows.push(new RecordRow(r, this.bootId, storedNs, ++this.#eventId, key));
      if (r.verdict)
        this.#awaiting.note(r.session.id, r.session.vcpuCount, r.msg.seq, r.ord ?? r.msg.seq, this.#eventId);
    }
    return rows;
  }

  /**
   * Inserts rows (idempotent), then APPLIED results and session rows in order, in one
   * transaction; null and `onError('append')` on failure.
   */
  appendRows(rows: readonly EventValues[], updates: readonly StoreUpdate[] = []): AppendResult | null {
    if (rows.length === 0 && updates.length === 0) return { inserted: 0, duplicates: 0 };
    return this.#guard('append', () => this.#appendRows(rows, updates));
  }

  /**
   * What a killed daemon wrote ahead after its rows (store/update-lines.ts), each for its own boot,
   * in order; then its sessions left open are closed, and action ids given go past its actions'.
   */
  recoverUpdates(written: readonly WrittenAhead[]): void {
    for (const bootId of new Set(written.map((w) => w.bootId))) {
      const updates = written.filter((w) => w.bootId === bootId).map((w) => w.update);
      this.#guard(updateOp(updates[0] as StoreUpdate), () => eventWriter(this.db, bootId)([], updates));
    }
    this.#closeLeftOpen();
    this.#syncIds();
  }

  /**
   * `n` event ids past every row stored and every id given, for rows recovery moves off ids given
   * twice (store/moved-rows.ts); the first of them.
   */
  giveIds(n: number): number {
    this.#syncIds();
    this.#eventId += n;
    return this.#eventId - n + 1;
  }

  /** What a killed daemon left is in: later ids go past its rows', and LEGACY_KEY_INDEX goes. */
  recovered(): void {
    this.#syncIds();
    this.#guard('append', () => this.#db.exec(`DROP INDEX IF EXISTS ${LEGACY_KEY_INDEX}`));
  }

  #isReported(key: ReplayKey): boolean {
    const found = () => this.#reported.get(storedU64(key.time), key.vm, key.seq) !== undefined;
    return this.#guard('append', found) ?? false;
  }

  /** Read side: events, poisoned pages, VMs, totals, rebuild — everything stored so far. */
  get queries(): StoreQueries {
    this.beforeRead();
    return this.#queries;
  }

  /**
   * Records the plugin's APPLIED result for an event of this boot; `fallbackAction` when the
   * plugin's fallback, not the verdict, is what the guest got (1.1 APPLIED source FALLBACK).
   */
  markApplied(sessionId: bigint, seq: number, result: number, fallbackAction: number | null = null): void {
    // The event it is about, once; none when no stored event awaits one.
    const event = this.#awaiting.take(sessionId, seq);
    if (event === undefined) return;
    this.update([Number(sessionId), event[0], result, this.#now(), fallbackAction, event[1]]);
  }

  /** Writes an update on this connection now; a failure is reported (`onError`), never thrown. */
  updateHere(u: StoreUpdate): void {
    this.#guard(updateOp(u), () => this.#appendRows([], [u]));
  }

  sessionOpened(s: SessionInfo): void {
    this.update(['open', ...sessionRow(s)]);
  }

  /** Closes its row (the whole row goes again: either may land first); its events await no APPLIED. */
  sessionClosed(s: SessionInfo, outcome: SessionOutcome, detail: string | null): void {
    this.#awaiting.forget(s.id);
    this.update(['close', ...sessionRow(s), this.#now(), outcome, detail]);
  }

  /**
   * Records an action (kill, migrate …) taken on a VM, under an id given now: its row goes the
   * way of every update (`update`), so the caller never waits for it. Give the returned record
   * to `actionEnded` for its outcome.
   */
  recordAction(a: ActionInput): ActionRecord {
    const now = this.#now();
    const event = a.event ?? null;
    const row: ActionUpdate = [
      'action',
      ++this.#actionId,
      a.timeMs ?? now,
      a.vm,
      a.action,
      a.rule,
      a.outcome,
      a.detail ?? null,
      now,
      event === null ? null : Number(event.sessionId),
      event === null ? null : event.seq,
    ];
    this.update(row);
    return row;
  }

  /** Sets the outcome of a recorded action (its whole row goes again: either may land first). */
  actionEnded(action: ActionRecord, outcome: string, detail: string | null = null): void {
    const [, id, timeMs, vm, kind, rule, , , , sessionId, seq] = action;
    this.update(['action-end', id, timeMs, vm, kind, rule, outcome, detail, this.#now(), sessionId, seq]);
  }

  /**
   * Keeps the source of a policy version that decided events, so `seawall why` can name the
   * state a rule read even after a reload or a restart. Once per version.
   */
  recordPolicy(version: string, name: string, source: string): void {
    this.update(['policy', version, name, source, this.#now()]);
  }

  /** The underlying connection, for retention and tests; the verdict path never uses it directly. */
  get db(): Database.Database {
    return this.#db;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the file (SQLite checkpoints the WAL on the last close). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#db.close();
    } catch (err) {
      this.#onError('close', err);
    }
  }

  #guard<T>(op: StoreOp, fn: () => T): T | null {
    if (this.#closed) {
      this.#onError(op, new StoreError('SEAWALL_STORE_CLOSED', `event store ${this.path} is closed`));
      return null;
    }
    try {
      return fn();
    } catch (err) {
      this.#onError(op, err);
      return null;
    }
  }
}
