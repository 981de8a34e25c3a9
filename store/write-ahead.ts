/**
 * The write-ahead file in front of the event store. On the verdict path a batch costs one
 * `write(2)` of its rows, as binary records (store/row-codec.ts), to `<store>.pending` — in the
 * kernel's page cache before the verdicts leave, so it survives kill -9 exactly like a WAL commit
 * would. Every `flushMs` the file is renamed into a segment (`<store>.pending.<n>`,
 * store/segments.ts) and handed to the writer thread, which inserts it in one transaction and
 * unlinks it once committed: SQLite's work leaves the event loop, and until a segment's commit is
 * acknowledged its file is on disk and its replay keys count as pending. APPLIED results and
 * session, action and policy rows received meanwhile go with the next rows' write
 * (store/update-lines.ts), so a segment also carries what a kill -9 would otherwise lose with the
 * process.
 * At open, every file a killed daemon left is inserted (inserts are idempotent) on this thread,
 * before the writer starts.
 *
 * Bounded: past `maxPending` rows (or updates) they are handed over at once. Past half of
 * `maxInFlight` rows and updates not yet committed, the sessions with the most rows among them are
 * not read (`pressure`, store/session-shares.ts) until their rows are committed or a quarter is
 * left: one VM's flood waits for the thread, the other VMs' verdicts do not. Past `maxInFlight`
 * the caller waits for the thread (a disk that cannot keep up slows verdicts rather than growing
 * memory). A failed commit keeps its segment for the next attempt. If the thread dies (it
 * crashed, or could not start: the process out of file descriptors), its segments are committed
 * here if the database allows, and a new thread takes over within a second; meanwhile hand-overs
 * commit here, the old, slower way.
 *
 * The thread waits in SCHED_IDLE once it has committed everything posted, so that on a CPU it
 * shares with the event loop or a vCPU's client it gives way at once; the event loop moves it back
 * to SCHED_OTHER when a posted segment has waited `idleAgeMs`, when an eighth of `maxInFlight` is
 * in flight, and before anything waits for it (a read, a full queue, close). With nothing posted
 * for `writerIdleMs` the thread ends, as the store's other helper threads do; the next hand-over
 * with rows starts another.
 *
 * A store fault — the disk full, the state directory removed or replaced — is detected (a failed
 * write, rename, open or commit, or a once-a-second check that the store file is still the one
 * open), reported once through `onHealth`, and ridden out: answered events are held in memory (up to
 * `maxHeld` rows; past it the VMs holding the most lose their oldest, counted), so are updates
 * (store/held-updates.ts), nothing is retried more than once a second, and when the fault clears —
 * space returns, the directory can be made again — the store is reopened if it was lost, the held
 * rows are written ahead and committed, each exactly once, and `onHealth` reports the recovery.
 *
 * Longer than 350 lines: the write-ahead file's durability rule (append before the reply, segment
 * rotation, recovery, holding rows through a store fault) is one state machine.
 */
import { closeSync, existsSync, fstatSync, renameSync } from 'node:fs';
import type { EventRecord } from '../events/index.js';
import { idleFacts, mayLeaveIdle } from '../kvm/index.js';
import { AUTOCHECKPOINT_PAGES, statIno, withoutBusyWait } from './connection.js';
import { StoreError, type StoreOp } from './errors.js';
import type { RecordRow } from './event-columns.js';
import type { EventStore } from './event-store.js';
import type { StoreRow } from './inserts.js';

export type { StoreHealth } from './held-rows.js';

import { thrownText } from '../errors/index.js';
import { HeldRows, PendingKeys, type StoreHealth } from './held-rows.js';
import { HeldUpdates } from './held-updates.js';
import { RecordEncoder } from './row-codec.js';
import { encodeRow } from './row-lines.js';
import type { ReplayKey } from './rows.js';
import {
  appendLines,
  appendWhole,
  cutTorn,
  heldPath,
  openAppend,
  readRows,
  recoverPending,
  retire,
  segmentPath,
  type TornBytes,
  tornBytes,
} from './segments.js';
import { type SessionRows, SessionShares } from './session-shares.js';
import { HELPER_THREAD_IDLE_MS } from './thread-requests.js';
import { encodeResult, encodeUpdate } from './update-lines.js';
import { type AppliedUpdate, isApplied, type StoreUpdate } from './updates.js';
import { WriterClient } from './writer-client.js';

export interface WriteAheadOptions {
  /** How long rows may wait before they are handed to the writer thread. */
  flushMs?: number;
  /** Rows in the file that force a hand-over. */
  maxPending?: number;
  /**
   * Rows and updates handed over and not yet committed that make the verdict path wait: a writer
   * thread that is healthy but slower than the fleet slows verdicts and HELLOs rather than growing
   * memory.
   */
  maxInFlight?: number;
  /** How long a read, close or full queue waits for a writer thread that commits nothing before committing here. */
  waitMs?: number;
  /** false: no writer thread, commits on the event loop (the design before it; for comparison). */
  thread?: boolean;
  /**
   * Whether the writer thread runs in SCHED_IDLE while it keeps up. Default: wherever this
   * process may take it out of SCHED_IDLE again (kvm/thread-policy.ts `mayLeaveIdle`).
   */
  idleWriter?: boolean;
  /** How long a posted segment may wait before an idle writer thread is moved back (ms). */
  idleAgeMs?: number;
  /**
   * How long the writer thread is kept with nothing posted to it (default HELPER_THREAD_IDLE_MS);
   * then it ends, and the next hand-over with rows starts another.
   */
  writerIdleMs?: number;
  /**
   * Rows held in memory while the store is faulty; past it the VMs holding the most lose their
   * oldest (counted).
   */
  maxHeld?: number;
  /** Updates held in memory (store/held-updates.ts); past it the oldest results go first (counted). */
  maxHeldUpdates?: number;
  /** How often a faulty store is retried, and a healthy one checked for a lost file. */
  checkMs?: number;
  /** Runs before a lost store is reopened (the service makes its directory again, safely). */
  prepareReopen?: () => void;
  onError?: (op: StoreOp, err: unknown) => void;
  /** Health changes: `fault` is the error that began a fault, null on recovery. */
  onHealth?: (health: StoreHealth) => void;
  /** Who stops reading which sessions at half of `maxInFlight`; without it only `maxInFlight` bounds. */
  pressure?: StorePressure;
}

/** The sessions the write-ahead bound holds (the daemon's plugin server). */
export interface StorePressure {
  /**
   * Stops reading these sessions (by session id): they have the most rows in flight. Returns how
   * many of them it held (a session that has closed meanwhile is none).
   */
  hold(ids: readonly bigint[]): number;
  /** Reads these sessions again. */
  release(ids: readonly bigint[]): void;
}

/** A segment handed over and not yet acknowledged as committed. */
interface Segment {
  file: string | null;
  /** Its rows' replay keys: let go of at once with its commit. */
  keys: PendingKeys;
  /** Its rows per session, with `pressure`. */
  sessions: SessionRows;
  /** The lowest id of its rows (Infinity: none), for `uncommittedFrom`. */
  lowId: number;
  /** APPLIED results and session rows, written after the rows. */
  updates: StoreUpdate[];
  /** How many of them the thread reads from the file (its update lines) instead of the port. */
  updatesInFile: number;
  /** To be posted (again) at the next hand-over. */
  retry: boolean;
  /** Its last commit failed: the store is faulty until it succeeds. */
  failed: boolean;
  /** Posted again after a failure: the fault ends with its acknowledgement, not before. */
  retried: boolean;
  /** performance.now() when last posted to the thread. */
  postedAt: number;
}

export class WriteAhead {
  readonly path: string;
  readonly #store: EventStore;
  /** The append file's descriptor; -1 from its close until a new one is open (a fault meanwhile). */
  #fd: number;
  readonly #flushMs: number;
  readonly #maxPending: number;
  readonly #maxInFlight: number;
  readonly #waitMs: number;
  readonly #onError: (op: StoreOp, err: unknown) => void;
  #writer: WriterClient | null;
  /** Replay keys of the rows in the file: the segment's once it is one. */
  #fileKeys = new PendingKeys();
  /** Updates received since the last write to the file, as lines: they go with the next. */
  #updateLines: string[] = [];
  /** Whether the file holds updates and no rows: it becomes a segment at the hand-over all the same. */
  #fileUpdates = false;
  /**
   * Update lines written to the file since it was opened, each for an update taken at its
   * hand-over while `#fileClean` holds: none failed to be written, none put back, no fault.
   */
  #fileUpdateLines = 0;
  #fileClean = true;
  /**
   * Bytes a write the disk cut short left in the file and that could not be cut off again
   * (store/segments.ts `appendWhole`): the file takes nothing more until they are — appended after
   * them, rows would read as the rest of a torn record — at the retry, or until it becomes a segment
   * (which then ends in them, as a killed daemon's file does).
   */
  #torn: TornBytes | null = null;
  readonly #encodeResult: (u: AppliedUpdate) => string;
  readonly #encodeUpdate: (u: Exclude<StoreUpdate, AppliedUpdate>) => string;
  /** The rows in the file, kept until handed over: if the file is lost with its directory, these are what is left. */
  #fileRows: StoreRow[] = [];
  /** The lowest id of the rows in the file (Infinity: none). */
  #fileLowId = Number.POSITIVE_INFINITY;
  /** The file's binary records (store/row-codec.ts): the strings it has defined so far. */
  readonly #encoder = new RecordEncoder();
  /** Rows answered while the store was faulty, in the order held. */
  readonly #held: HeldRows;
  #fault: { error: string; sinceMs: number } | null = null;
  readonly #prepareReopen: () => void;
  readonly #onHealth: (h: StoreHealth) => void;
  readonly #check: NodeJS.Timeout;
  /** Updates for the next hand-over; while faulty, for the next retry. */
  readonly #updates: HeldUpdates;
  /** Replay keys of the rows held through a fault (the file's and each segment's are their own). */
  readonly #heldKeys = new PendingKeys();
  readonly #inFlight = new Map<number, Segment>();
  #inFlightRows = 0;
  readonly #pressure: StorePressure | null;
  /** Rows per session, counted only with `pressure`. */
  readonly #shares = new SessionShares();
  /** The sessions held by `pressure` now. */
  readonly #heldSessions = new Set<bigint>();
  /** Sessions held since open. */
  #pressures = 0;
  /** Updates in the segments in flight: with the rows, what `maxInFlight` bounds. */
  #inFlightUpdates = 0;
  /** Segment files made (their names' numbers). */
  #segments = 1;
  /** Segments not yet posted are keyed by negative numbers, from this counter. */
  #staged = 0;
  /** The number of the last segment posted to the thread. */
  #posted = 0;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Rows recovered from a previous run's files at open. */
  readonly recovered: number;

  constructor(store: EventStore, opts: WriteAheadOptions = {}) {
    this.#store = store;
    this.path = `${store.path}.pending`;
    this.#encodeResult = encodeResult(store.bootId);
    this.#encodeUpdate = encodeUpdate(store.bootId);
    this.#flushMs = opts.flushMs ?? 20;
    this.#maxPending = opts.maxPending ?? 10_000;
    this.#maxInFlight = opts.maxInFlight ?? 100_000;
    this.#waitMs = opts.waitMs ?? 2000;
    this.#onError = opts.onError ?? (() => {});
    const maxHeld = opts.maxHeld ?? 200_000;
    this.#held = new HeldRows(
      maxHeld,
      this.#heldKeys,
      (n) =>
        this.#onError(
          'append',
          new StoreError('SEAWALL_STORE_LOST', `${n} held events dropped past the ${maxHeld}-event bound`),
        ),
      heldPath(this.path),
    );
    const maxUpdates = opts.maxHeldUpdates ?? maxHeld;
    this.#updates = new HeldUpdates(maxUpdates, (n) =>
      this.#onError(
        'append',
        new StoreError('SEAWALL_STORE_LOST', `${n} held updates dropped past the ${maxUpdates}-update bound`),
      ),
    );
    this.#prepareReopen = opts.prepareReopen ?? (() => {});
    this.#onHealth = opts.onHealth ?? (() => {});
    this.#pressure = opts.pressure ?? null;
    this.#threaded = opts.thread !== false;
    this.#idleWriter = opts.idleWriter ?? (this.#threaded && mayLeaveIdle(idleFacts()));
    this.#idleAgeMs = opts.idleAgeMs ?? 100;
    this.#writerIdleMs = opts.writerIdleMs ?? HELPER_THREAD_IDLE_MS;
    this.recovered = store.whileStarting(() =>
      recoverPending(store, this.path, (_file, err) => this.#onError('append', err)),
    );
    this.#fd = openAppend(this.path);
    // Started with the first hand-over: a host without memory errors — the usual one — never
    // pays for a thread (its isolate and connection, ~10 MB resident) it has nothing to give.
    this.#writer = null;
    store.beforeRead = () => this.flush();
    store.update = (u) => this.#update(u);
    this.#check = setInterval(() => this.#tick(), opts.checkMs ?? 1000);
    this.#check.unref();
  }

  readonly #threaded: boolean;
  /** Whether the writer thread goes into SCHED_IDLE while it keeps up; false once that failed. */
  #idleWriter: boolean;
  readonly #idleAgeMs: number;
  readonly #writerIdleMs: number;
  /** performance.now() of the last post to a writer thread. */
  #lastPostAt = 0;
  #writersEnded = 0;

  /** Whether a writer thread could not be created since the last check: none is tried until the next. */
  #writerRefused = false;

  #startWriter(): WriterClient | null {
    if (!this.#threaded || this.#writerRefused) return null;
    try {
      return this.#newWriter();
    } catch (err) {
      // No thread to be had (EAGAIN: the process or its cgroup out of threads). Segments are
      // committed on the event loop meanwhile; another thread is tried after the next check.
      this.#writerRefused = true;
      const why = `no writer thread could be started, segments are committed on the event loop: ${(err as Error).message}`;
      this.#onError('append', new StoreError('SEAWALL_STORE_WRITER', why));
      return null;
    }
  }

  #newWriter(): WriterClient {
    const writer: WriterClient = new WriterClient({
      path: this.#store.path,
      bootId: this.#store.bootId,
      onAck: (id, err, rows, damage) => {
        if (this.#writer === writer) this.#ack(id, err, rows, damage);
      },
      onDead: (err) => {
        if (this.#writer !== writer) return;
        // What was posted to it will never be acknowledged. A fault until it is committed: here at
        // once if the database allows it, else by the once-a-second retry, on a new thread.
        for (const [id, seg] of this.#inFlight) if (id > 0) seg.failed = true;
        this.#fail('append', err);
        this.#commitInFlightHere();
        this.#maybeHealed();
      },
    });
    // From now on the thread's checkpoints copy what a storm writes, not a rare commit on the event
    // loop (store/connection.ts). A store reopened since has SQLite's 1,000 until the next thread.
    try {
      this.#store.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    } catch {
      // A connection a failed reopen left closed: the one opened in its place is raised with the
      // thread started after it. Only when SQLite checkpoints depends on it.
    }
    return writer;
  }

  /**
   * The lowest id of an event row written ahead or held and not yet committed; null when every row
   * answered so far is committed (or counted lost). Rows are given ids as their events are
   * answered, so every row below it is in SQLite: `seawall events --follow` reads up to it and no
   * further, and a segment committed late (after a fault, or here after the thread failed) is not
   * passed over.
   */
  get uncommittedFrom(): number | null {
    let low = this.#fileLowId;
    for (const seg of this.#inFlight.values()) if (seg.lowId < low) low = seg.lowId;
    low = Math.min(low, this.#held.lowestId());
    return low === Number.POSITIVE_INFINITY ? null : low;
  }

  /** Whether answered events are reaching the store. */
  get health(): StoreHealth {
    const updates = this.#updates.length + this.#inFlightUpdates;
    return {
      healthy: this.#fault === null,
      error: this.#fault?.error ?? null,
      sinceMs: this.#fault?.sinceMs ?? null,
      // Past the bound, those only the copy of held rows keeps are held there, not lost.
      heldRows: this.#held.length + this.#held.copyOnly,
      droppedRows: this.#held.dropped + this.#lostRows,
      heldUpdates: updates,
      droppedUpdates: this.#updates.dropped,
    };
  }

  /** Begins a fault (reported once); later failures of the same fault are only counted. */
  #fail(op: StoreOp, err: unknown): void {
    this.#onError(op, err);
    this.#beginFault(thrownText(err));
  }

  /** `#fail` for a failure already counted (the store's own guard reported it). */
  #beginFault(error: string): void {
    this.#fileClean = false;
    if (this.#fault) return;
    this.#fault = { error, sinceMs: Date.now() };
    // Rows now wait in memory, bounded by `maxHeld`, not in flight: the held sessions go on.
    this.#ease();
    this.#onHealth(this.health);
  }

  /** Once a second: a healthy store is checked for a lost file; a faulty one is retried. */
  #tick(): void {
    if (this.#closed) return;
    this.#replaceDeadWriter();
    this.#endIdleWriter();
    this.#raiseIfBehind();
    this.#easeIfStalled();
    this.#updates.reportDrops();
    if (!this.#fault) {
      if (this.#store.lost())
        this.#fail(
          'append',
          new StoreError('SEAWALL_STORE_LOST', `${this.#store.path} was removed or replaced`),
        );
      else return;
    }
    this.#retry();
  }

  /**
   * One attempt to end a fault: reopen a lost store, write the held rows ahead (once no segment
   * awaits its commit, or at close), retry commits.
   */
  #retry(closing = false): void {
    try {
      if (this.#store.lost()) {
        this.#prepareReopen();
        this.#store.reopen();
        // The thread's connection went with it, and what was posted to it is retried below.
        const old = this.#writer;
        this.#writer = null;
        old?.close(this.#waitMs);
        for (const seg of this.#inFlight.values()) seg.failed ||= !seg.retry;
        // The copy of held rows went with it.
        this.#held.copyGone();
        // A fresh thread starts with the hand-over below.
      }
      // The file appended to went with its directory (a store lost with it): its rows are only in
      // memory now. Held, as when a hand-over cannot rename the file, they are written ahead again
      // below, in the file opened in its place.
      if (this.#fd >= 0 && !this.#appendFileInPlace()) this.#holdFileRows();
      // The copy is opened again by the next held rows: another try at it, once a second.
      this.#held.closeCopy();
      this.#closeAppend();
      this.#fd = openAppend(this.path);
      // A fault already: a cut that fails again is only reported, and the next retry tries again.
      if (!this.#cutTorn()) return;
      // Not while a segment still awaits its commit (but at close): each retry would add a segment
      // the fault refuses, in flight until the in-flight bound made every hand-over wait for the
      // thread — every VM's verdicts with it. Until then the rows stay held, under their own bound,
      // and their copy stays: it is removed only once nothing is in flight.
      const write = closing || !this.#awaitingCommit();
      if (write && (this.#held.length > 0 || this.#held.updatesCopied > 0)) {
        const rows = this.#held.peek();
        // The updates held with them go too, before their copy does (a kill meanwhile leaves
        // them twice: each is idempotent or carries its whole row).
        const updates = this.#held.updatesCopied > 0 ? this.#updates.peek() : [];
        const lines = rows.map(encodeRow);
        for (const u of updates) lines.push(this.#lineOf(u));
        appendLines(this.#fd, lines);
        if (updates.length > 0) this.#fileUpdates = true;
        for (const row of rows) {
          this.#fileKeys.add(row.key);
          this.#fileRows.push(row);
        }
        this.#fileLowId = Math.min(this.#fileLowId, this.#held.lowestId());
        this.#takeCopy();
        this.#held.clear();
      }
    } catch (err) {
      this.#torn = tornBytes(err) ?? this.#torn;
      this.#onError('append', err);
      return;
    }
    this.#putBackFailed();
    // One segment of updates in flight at a time: a thread still failing the last must not queue more.
    let posted = false;
    for (const seg of this.#inFlight.values()) posted ||= seg.updates.length > 0 && !seg.failed && !seg.retry;
    this.#handOver(!posted);
    this.#maybeHealed();
  }

  /**
   * Rows dropped from memory past `maxHeld` that the copy holds are stored from it: the copy
   * becomes a segment, committed before the held rows written ahead (its copies of those are
   * inserted twice, idempotently); the fault ends with its commit.
   */
  #takeCopy(): void {
    const file = segmentPath(this.path, this.#segments);
    const taken = this.#held.takeCopy(file);
    if (taken === null) return;
    this.#segments++;
    const keys = new PendingKeys();
    for (const key of taken.keys) keys.add(key);
    this.#inFlight.set(-++this.#staged, {
      file,
      keys,
      sessions: new Map(),
      lowId: taken.lowId,
      updates: [],
      updatesInFile: 0,
      retry: true,
      failed: false,
      retried: true,
      postedAt: 0,
    });
    this.#inFlightRows += keys.size;
  }

  /**
   * Whether a segment in flight still awaits its commit: posted and not acknowledged, or failed
   * with its file on disk (a failed one whose file is gone is let go of by `#putBackFailed`).
   */
  #awaitingCommit(): boolean {
    for (const seg of this.#inFlight.values())
      if (!seg.failed || (seg.file !== null && existsSync(seg.file))) return true;
    return false;
  }

  /**
   * Marks failed segments for the retry, their updates put back with those held (where the bound
   * applies): a segment of updates alone goes, and its updates join the next. A failed segment
   * whose file is gone — unlinked by a thread that committed it and died before acknowledging, or
   * removed with its directory — has no rows left to read: they are in the store already, or lost
   * with the file (the rows of a removed directory, like those it had committed). Its updates,
   * in memory, are retried.
   */
  #putBackFailed(): void {
    const back: StoreUpdate[] = [];
    for (const [id, seg] of [...this.#inFlight]) {
      if (!seg.failed) continue;
      for (const u of seg.updates) back.push(u);
      this.#inFlightUpdates -= seg.updates.length;
      seg.updates = [];
      seg.updatesInFile = 0;
      if (seg.file && existsSync(seg.file)) seg.retry = true;
      else this.#done(id, seg);
    }
    if (back.length > 0) this.#fileClean = false; // they are not in the file
    this.#updates.putBack(back);
  }

  /**
   * Ends the fault once the append file is open, nothing is held (nor copied: updates alone in the
   * copy are written ahead by a retry too) and no commit awaits a retry.
   */
  #maybeHealed(): void {
    if (!this.#fault || this.#fd < 0 || this.#held.length > 0 || this.#held.updatesCopied > 0) return;
    for (const seg of this.#inFlight.values()) if (seg.failed || seg.retried) return;
    // Drops of this last retry (a put-back past the bound) are reported before the recovery is.
    this.#updates.reportDrops();
    this.#fault = null;
    this.#onHealth(this.health);
    // Updates that waited for the retry go now.
    if (this.#updates.length > 0) this.#schedule();
  }

  /** Whether a writer thread runs: none until the first hand-over, none after it died or ended idle. */
  get writerRunning(): boolean {
    return this.#writer?.alive === true;
  }

  /** The writer thread's id (/proc/self/task/<id>) while one runs and has started. */
  get writerThreadId(): number | null {
    return this.#writer?.threadId ?? null;
  }

  /** Transactions the current writer thread has committed: fewer than segments once it merges. */
  get writerCommits(): number {
    return this.#writer?.commits ?? 0;
  }

  /** Checkpoints the current writer thread ran itself, when nothing was posted to it. */
  get writerCheckpoints(): number {
    return this.#writer?.checkpoints ?? 0;
  }

  /** Whether the writer thread is in SCHED_IDLE now. */
  get writerIdle(): boolean {
    return this.#writer?.idle === true;
  }

  /** Whether the writer thread sleeps until a post wakes it (store/writer-thread.ts `POLL_MS`). */
  get writerAsleep(): boolean {
    return this.#writer?.asleep === true;
  }

  /** Times the writer thread was moved out of SCHED_IDLE because rows or a read waited on it. */
  get writerRaises(): number {
    return this.#raises;
  }

  #raises = 0;

  /** Rows written ahead and not yet committed to SQLite. */
  get pending(): number {
    return this.#fileKeys.size + this.#inFlightRows;
  }

  /**
   * Milliseconds the event loop has waited, since open, because `maxInFlight` rows were written
   * ahead and not yet committed: every verdict waited with it.
   */
  get backpressureMs(): number {
    return this.#backpressureMs;
  }

  #backpressureMs = 0;

  /** The verdict path: one write of the batch's rows; the writer thread takes them within flushMs. */
  record(batch: readonly EventRecord[]): void {
    if (this.#closed) {
      this.#store.append(batch);
      return;
    }
    const rows = this.#store.rowsOf(batch, this.#isPending);
    if (rows.length === 0) return;
    if (this.#fault || !this.#cutTorn()) {
      // Retried once a second, not per batch: a full disk must not cost every verdict a failed write.
      this.#held.hold(rows);
      return;
    }
    try {
      // The updates received since the last write share this one (no write(2) of their own).
      const lines = this.#updateLines.length > 0 ? this.#takeUpdateLines() : [];
      appendWhole(this.#fd, this.#encoder.encode(rows, lines));
      this.#fileUpdateLines += lines.length;
    } catch (err) {
      // The file cannot take it (ENOSPC, EIO…): held in memory until it can. What the file
      // has is as before the write (or, past `#torn`, is cut off at the retry), and it may
      // lack strings the encoder took as defined.
      this.#encoder.reset();
      this.#torn = tornBytes(err) ?? this.#torn;
      this.#fail('append', err);
      this.#held.hold(rows);
      return;
    }
    for (const row of rows) {
      this.#fileKeys.add(row.key);
      this.#fileRows.push(row);
    }
    // A batch's ids rise from its first (EventStore.rowsOf).
    this.#fileLowId = Math.min(this.#fileLowId, (rows[0] as RecordRow).id);
    if (this.#pressure) this.#shares.count(batch);
    if (this.#fileKeys.size >= this.#maxPending) this.#handOver();
    else this.#schedule();
  }

  /**
   * An APPLIED result, or a session, action or policy row (the store's `update` comes here): it
   * goes with the next hand-over, after the rows queued before it. Through a fault it may still
   * commit before its event's row (store/inserts.ts keeps it for the row). Each is also written
   * ahead with the next rows, or at the next hand-over without them (`#updateLines`,
   * store/update-lines.ts): a kill -9 loses only those received since the file's last write,
   * within flushMs; while the store is faulty, those received meanwhile go to the copy of the
   * held rows (store/held-rows.ts `copyUpdate`), written ahead with them at the retry.
   * Written on the event loop, each waited out the busy timeout whenever the
   * writer thread or another process held the write lock — every VM's verdicts with it. While the
   * store is faulty it waits for the once-a-second retry, bounded (store/held-updates.ts).
   */
  #update(u: StoreUpdate): void {
    if (this.#closed) this.#store.updateHere(u);
    else {
      if (this.#fault === null) this.#updateLines.push(this.#lineOf(u));
      else this.#held.copyUpdate(this.#lineOf(u));
      this.#updates.push(u);
      // Like rows, many updates within one flushMs (a storm of connects) go at once, where
      // `maxInFlight` can bound them; while faulty they wait for the retry.
      if (this.#updates.length >= this.#maxPending && this.#fault === null) this.#handOver();
      else this.#schedule();
    }
  }

  #lineOf(u: StoreUpdate): string {
    return isApplied(u) ? this.#encodeResult(u) : this.#encodeUpdate(u);
  }

  #takeUpdateLines(): string[] {
    const lines = this.#updateLines;
    this.#updateLines = [];
    return lines;
  }

  /**
   * The updates not yet written, before the file becomes a segment. A failed write costs only
   * their copy on disk (they are committed from memory with the segment), and is reported.
   */
  #writeUpdateLines(): void {
    if (this.#updateLines.length === 0) return;
    // No file to write to: a fault, which holds what is answered; these are in memory.
    if (this.#fd < 0 || !this.#cutTorn()) {
      this.#updateLines = [];
      this.#fileClean = false;
      return;
    }
    try {
      const lines = this.#takeUpdateLines();
      appendLines(this.#fd, lines);
      this.#fileUpdateLines += lines.length;
      this.#fileUpdates = true;
    } catch (err) {
      this.#fileClean = false;
      this.#torn = tornBytes(err) ?? this.#torn;
      this.#onError('append', err);
    }
  }

  /**
   * Whether the append file may be appended to: the bytes of a torn write that could not be cut
   * off (`#torn`) are cut now. Left in the file, they would swallow what follows them up to its
   * first newline — a record, and with its strings every record after it. A torn update line
   * leaves them with no fault begun (the updates are in memory); a cut that fails again begins
   * one, whose retry cuts them before anything is written ahead.
   */
  #cutTorn(): boolean {
    if (this.#torn === null) return true;
    try {
      cutTorn(this.#fd, this.#torn);
      this.#torn = null;
      return true;
    } catch (err) {
      this.#fail('append', err);
      return false;
    }
  }

  /** Everything written ahead is in SQLite when this returns (reads call it first). */
  flush(): void {
    this.#handOver();
    this.#drain();
  }

  /** Waits for the thread, then commits here whatever it has not acknowledged. Never hands over. */
  #drain(): void {
    if (this.#inFlight.size === 0) return;
    this.#raiseWriter();
    if (this.#writer?.alive) this.#writer.waitFor(this.#posted, this.#waitMs);
    // Whatever the thread has not acknowledged (failed, slow, gone) is committed here; the
    // inserts are idempotent, so a segment the thread commits later as well is stored once.
    this.#commitInFlightHere();
  }

  /**
   * Resolves once everything written ahead so far is committed — or after `waitMs`, or at once
   * when the store is faulty (a read then sees what is committed). Never blocks the event loop:
   * the control socket's reads wait here instead of in `flush`.
   */
  settle(): Promise<void> {
    this.#handOver();
    const target = this.#posted;
    const settled = () =>
      this.#fault !== null || ![...this.#inFlight.keys()].some((id) => id > 0 && id <= target);
    if (settled()) return Promise.resolve();
    this.#raiseWriter();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#settleWaiters.delete(check);
        resolve();
      };
      const check = () => {
        if (settled()) done();
      };
      const timer = setTimeout(done, this.#waitMs);
      timer.unref();
      this.#settleWaiters.add(check);
    });
  }

  readonly #settleWaiters = new Set<() => void>();

  /** Commits everything, stops the writer thread, closes the file (before the store closes). */
  close(): void {
    if (this.#closed) return;
    clearInterval(this.#check);
    if (this.#fault) this.#retry(true);
    this.#handOver(true);
    // A hand-over that found the directory gone held the file's rows: one more try makes it again.
    if (this.#fault && this.#held.length > 0) {
      this.#retry(true);
      this.#handOver(true);
    }
    this.#drain();
    if (this.#held.length > 0) {
      // The store never came back: the held rows are lost with this process, but for those in
      // their copy, which the next start stores; say how many.
      const kept = this.#held.copied;
      const copy = kept > 0 ? `; ${kept} of them kept in ${heldPath(this.path)} for the next start` : '';
      const held = this.#held.length + this.#held.copyOnly;
      this.#onError(
        'close',
        new StoreError('SEAWALL_STORE_LOST', `${held} answered events not stored${copy}`),
      );
    }
    this.#held.closeCopy();
    this.#closed = true;
    this.#writer?.close(this.#waitMs);
    this.#commitInFlightHere();
    this.#closeAppend();
    this.#updates.reportDrops();
    const { heldUpdates } = this.health;
    if (heldUpdates > 0)
      this.#onError('close', new StoreError('SEAWALL_STORE_LOST', `${heldUpdates} updates not stored`));
  }

  /** Whether the file appended to is still at its path (not gone with its directory, nor replaced). */
  #appendFileInPlace(): boolean {
    try {
      return fstatSync(this.#fd).ino === statIno(this.path);
    } catch {
      return false;
    }
  }

  /** The rows of the file appended to are held in memory: the file is lost, or cannot be handed over. */
  #holdFileRows(): void {
    const rows = this.#fileRows;
    this.#fileKeys = new PendingKeys();
    this.#fileRows = [];
    this.#fileLowId = Number.POSITIVE_INFINITY;
    this.#shares.dropFile();
    this.#held.hold(rows);
  }

  /**
   * Closes the append file once: its number is forgotten first. Once closed, the number is any
   * thread's to take — a starting writer thread's event loop, another connection's database file —
   * and closing it again would close theirs.
   */
  #closeAppend(): void {
    const fd = this.#fd;
    this.#fd = -1;
    // The next file defines its strings afresh.
    this.#encoder.reset();
    if (fd < 0) return;
    try {
      closeSync(fd);
    } catch {
      // already unusable; closed all the same (close(2): the descriptor is freed even on error)
    }
  }

  #schedule(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => this.#handOver(), this.#flushMs);
    this.#timer.unref();
  }

  /**
   * Turns the file into a segment and posts it (with any segment to retry) to the writer thread.
   * While the store is faulty the updates wait for the retry, which asks for them (`withUpdates`).
   */
  #handOver(withUpdates = this.#fault === null): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const updates = withUpdates ? this.#updates.length : 0;
    if (this.#fileKeys.size > 0 || updates > 0) {
      let file: string | null = null;
      let updatesInFile = 0;
      this.#writeUpdateLines();
      // A file of updates alone becomes a segment too, removed with its commit: left to wait for
      // rows, on a host without memory errors it would grow with every session for good.
      if (this.#fileKeys.size > 0 || this.#fileUpdates) {
        file = segmentPath(this.path, this.#segments++);
        try {
          renameSync(this.path, file);
        } catch (err) {
          // The directory is gone or unusable: the file's rows are now only in memory. Hold them
          // (their keys are pending already) and let the once-a-second retry reopen the store.
          this.#segments--;
          this.#fail('append', err);
          this.#holdFileRows();
          return;
        }
        this.#fileUpdates = false;
        this.#torn = null; // the segment ends in them
        // Every update taken below has its line in the segment: the thread reads them there.
        if (this.#fileClean && this.#fileUpdateLines === updates) updatesInFile = updates;
        this.#fileUpdateLines = 0;
        this.#fileClean = this.#fault === null && this.#updates.length === updates;
        // The rows are in the segment whatever becomes of the new file: they stay pending. Without
        // a new file (EMFILE: another thread took the number just freed) the store is faulty, and
        // rows are held until the once-a-second retry opens one.
        this.#closeAppend();
        try {
          this.#fd = openAppend(this.path);
        } catch (err) {
          this.#fail('append', err);
        }
      }
      // Updates put back after a failed commit: the fault ends with this segment's acknowledgement.
      const retried = updates > 0 && this.#updates.retried;
      const sessions = this.#shares.takeFile();
      this.#shares.add(sessions);
      this.#inFlight.set(-++this.#staged, {
        file,
        keys: this.#fileKeys,
        sessions,
        lowId: this.#fileLowId,
        updates: updates > 0 ? this.#updates.take() : [],
        updatesInFile,
        retry: true,
        failed: false,
        retried,
        postedAt: 0,
      });
      this.#inFlightRows += this.#fileKeys.size;
      this.#inFlightUpdates += updates;
      this.#fileKeys = new PendingKeys();
      this.#fileRows = [];
      this.#fileLowId = Number.POSITIVE_INFINITY;
    }
    const toPost = [...this.#inFlight].filter(([, seg]) => seg.retry);
    // Rows start the thread (~10 MB resident, and CPU at start). Session, action and policy rows
    // alone are committed here while none runs — a daemon whose VMs have had no memory error, the
    // usual one, never runs it, and one whose thread ended idle does not start it again for them —
    // but only with the write lock free: another connection holding it (a retention slice, an
    // operator's sqlite3) would have the event loop wait out the busy timeout, every verdict with
    // it, and then fault. The thread's connection waits for it instead.
    if (
      this.#writer === null &&
      toPost.length > 0 &&
      (toPost.some(([, seg]) => seg.keys.size > 0) || !this.#writeLockFree())
    )
      this.#writer = this.#startWriter();
    for (const [i, [id, seg]] of toPost.entries()) {
      if (!this.#writer?.alive) {
        if (this.#commitHere(id, seg)) continue;
        // Not tried again at every hand-over: the fault's once-a-second retry takes them.
        for (const [, rest] of toPost.slice(i)) {
          rest.retry = false;
          rest.failed = true;
        }
        break;
      }
      // Numbered as posted: the thread processes in that order, and its counter of the last
      // segment processed is what reads wait on.
      this.#inFlight.delete(id);
      this.#inFlight.set(++this.#posted, seg);
      seg.retry = false;
      seg.retried ||= seg.failed;
      seg.failed = false;
      seg.postedAt = performance.now();
      this.#lastPostAt = seg.postedAt;
      const inFile = seg.updatesInFile;
      this.#writer.post(this.#posted, seg.file, seg.keys.size, inFile > 0 ? [] : seg.updates, inFile);
    }
    this.#raiseIfBehind();
    // Backpressure: the verdict path waits for the thread. Not `flush`, which hands over first and
    // would come back here while the rows are still in flight.
    // Not through a fault: rows then wait in memory under `maxHeld`, and a failed segment's commit
    // is retried once a second; waiting for the thread would hold up every verdict for nothing.
    if (this.#fault === null && this.#overBound()) {
      const start = performance.now();
      this.#relieve();
      this.#backpressureMs += performance.now() - start;
    }
    this.#press();
  }

  /**
   * Half of `maxInFlight` in flight: the sessions with their even share of the rows or more are
   * not read until their own rows are committed, or a quarter is left (`#ease`). The event loop
   * goes on answering the others, and the thread commits what the held ones wrote. A session
   * held is held only while rows of its own wait: however long others keep the backlog up, it
   * is read again once the thread has committed what it sent.
   */
  #press(): void {
    if (this.#pressure === null || this.#fault !== null || this.#stalled) return;
    if (this.#inFlightRows + this.#inFlightUpdates < this.#maxInFlight / 2) return;
    const ids = this.#shares.heaviest().filter((id) => !this.#heldSessions.has(id));
    if (ids.length === 0) return;
    if (this.#heldSessions.size === 0) this.#progressAt = performance.now();
    for (const id of ids) this.#heldSessions.add(id);
    this.#pressures += this.#pressure.hold(ids);
  }

  /**
   * Held sessions are read again once their own rows are all committed (`committed`: the sessions
   * of a segment just committed), and all of them once a quarter of `maxInFlight` is left in
   * flight, or at a fault.
   */
  #ease(committed: ReadonlyMap<bigint, number> | null = null): void {
    if (this.#heldSessions.size === 0 || this.#pressure === null) return;
    if (this.#fault !== null || this.#inFlightRows + this.#inFlightUpdates <= this.#maxInFlight / 4) {
      this.#releaseHeld();
      return;
    }
    if (committed === null) return;
    const done: bigint[] = [];
    for (const id of committed.keys())
      if (this.#heldSessions.has(id) && this.#shares.of(id) === 0) done.push(id);
    if (done.length === 0) return;
    for (const id of done) this.#heldSessions.delete(id);
    this.#pressure.release(done);
  }

  #releaseHeld(): void {
    const ids = [...this.#heldSessions];
    this.#heldSessions.clear();
    this.#pressure?.release(ids);
  }

  /** performance.now() of the last commit acknowledged, or of the hold, if later. */
  #progressAt = 0;
  /** Nothing committed for `waitMs` while sessions were held: none is held until a commit is. */
  #stalled = false;

  /**
   * A thread that commits nothing for `waitMs` while sessions are held (a lock another process
   * holds, a disk that stopped) does not keep them waiting
   * on it: they are read again and `maxInFlight` bounds what is in flight, as without `pressure`
   * — the caller waits, then commits here or finds the fault.
   */
  #easeIfStalled(): void {
    if (this.#heldSessions.size === 0 || performance.now() - this.#progressAt < this.#waitMs) return;
    this.#stalled = true;
    this.#releaseHeld();
  }

  /** Sessions held by the bound (`pressure`) since open. */
  get pressures(): number {
    return this.#pressures;
  }

  /**
   * Waits for the oldest segments until at most half the bound is in flight — not for all of
   * them, which made every stall as long as the whole backlog — then falls back to `#drain` if
   * the thread is gone or stalled.
   */
  #relieve(): void {
    this.#raiseWriter();
    if (this.#writer?.alive) {
      let left = this.#inFlightRows + this.#inFlightUpdates;
      let upTo = 0;
      for (const [id, seg] of this.#inFlight) {
        if (left <= this.#maxInFlight / 2) break;
        if (id <= 0) continue; // not posted: only `#drain` commits those
        left -= seg.keys.size + seg.updates.length;
        upTo = Math.max(upTo, id);
      }
      if (upTo > 0) this.#writer.waitFor(upTo, this.#waitMs);
    }
    // A fault found meanwhile (the thread's commit failed): nothing more is waited for.
    if (this.#fault === null && this.#overBound()) this.#drain();
  }

  /** Whether rows and updates in flight reach `maxInFlight`. */
  #overBound(): boolean {
    return this.#inFlightRows + this.#inFlightUpdates >= this.#maxInFlight;
  }

  #ack(id: number, err: Error | null, rows: number, damage: string | null): void {
    const seg = this.#inFlight.get(id);
    if (!seg) return; // committed here already
    if (!err) this.#countLost(seg, rows, damage);
    if (err) {
      // Kept (its file is on disk) and retried with the fault's once-a-second retry.
      seg.failed = true;
      this.#fail('append', err);
      for (const check of [...this.#settleWaiters]) check();
      return;
    }
    this.#done(id, seg);
    this.#maybeHealed();
    for (const check of [...this.#settleWaiters]) check();
    this.#lowerWriter();
  }

  /**
   * The writer thread in SCHED_IDLE once nothing posted waits for it: it then takes a CPU only
   * when nothing else wants one, and the event loop or a vCPU's client, waking on its CPU, takes
   * the CPU from it at once instead of waiting up to a scheduler tick behind it — the p99.9 tail
   * (docs/performance.md). Never while a read waits for it.
   */
  #lowerWriter(): void {
    const writer = this.#writer;
    if (!this.#idleWriter || !writer?.alive || writer.idle || this.#settleWaiters.size > 0) return;
    for (const id of this.#inFlight.keys()) if (id > 0) return;
    // Refused (no thread id, a seccomp filter or security module): not tried again.
    if (writer.setIdle(true) !== null) this.#idleWriter = false;
  }

  /**
   * An idle writer thread back in SCHED_OTHER: rows wait on it. On a host whose vCPUs keep every
   * CPU busy an idle thread barely runs, and past `maxInFlight` the verdict path would wait on it.
   */
  #raiseWriter(): void {
    const writer = this.#writer;
    if (!writer?.idle || !writer.alive) return;
    const error = writer.setIdle(false);
    if (error === null) {
      this.#raises++;
      return;
    }
    // `mayLeaveIdle` said it could; the limit or the thread's nice value changed since.
    this.#idleWriter = false;
    this.#onError(
      'append',
      new StoreError('SEAWALL_STORE_WRITER', `the writer thread cannot leave SCHED_IDLE: ${error}`),
    );
  }

  /** Raises the writer when it is behind: a posted segment older than `idleAgeMs`, or an eighth of `maxInFlight`. */
  #raiseIfBehind(): void {
    if (!this.#writer?.idle) return;
    let behind = this.#inFlightRows >= this.#maxInFlight / 8;
    const now = performance.now();
    for (const [id, seg] of this.#inFlight) behind ||= id > 0 && now - seg.postedAt >= this.#idleAgeMs;
    if (behind) this.#raiseWriter();
  }

  /**
   * A writer thread that died (it crashed, or could not open the store), or that could not be
   * created, is replaced at most once a second: the next hand-over starts a new one. Until then
   * segments are committed on the event loop.
   */
  #replaceDeadWriter(): void {
    this.#writerRefused = false;
    const dead = this.#writer;
    if (dead === null || dead.alive) return;
    // Its death may not have been read yet (the check came first): what was posted to it is
    // retried as `onDead` does, before it stops being this layer's writer.
    dead.reap();
    this.#writer = null;
    dead.close(0);
  }

  /**
   * Ends a writer thread that has had nothing posted to it for `writerIdleMs`: its isolate and
   * connection (~12 MB resident) are held for nothing between storms, which are rare. It sleeps
   * already (a second without a post, its WAL pages checkpointed: store/writer-thread.ts), and
   * nothing of it is awaited: no segment in flight, no fault, no read waiting. The next hand-over
   * with rows starts another (off the event loop's answers: the write-ahead file keeps them durable
   * meanwhile); segment numbers go on from the last posted.
   */
  #endIdleWriter(): void {
    const writer = this.#writer;
    if (writer === null || !writer.alive || !writer.asleep) return;
    if (this.#fault !== null || this.#inFlight.size > 0 || this.#settleWaiters.size > 0) return;
    if (performance.now() - this.#lastPostAt < this.#writerIdleMs) return;
    this.#writer = null;
    this.#writersEnded++;
    writer.end();
  }

  /** Writer threads ended after `writerIdleMs` with nothing posted. */
  get writersEnded(): number {
    return this.#writersEnded;
  }

  /**
   * Commits the segments in flight on this thread, oldest first, up to the first that fails: a
   * database another process holds locked makes each attempt wait out the busy timeout, and the
   * rest are kept for the fault's retry.
   */
  #commitInFlightHere(): void {
    this.#threadWaited = false;
    for (const [id, seg] of this.#inFlight) if (!this.#commitHere(id, seg)) return;
  }

  /**
   * Whether no other connection holds the store's write lock now: taken without waiting, and let
   * go at once (a few microseconds). The commit that follows could still meet it taken in between,
   * and wait as before.
   */
  #writeLockFree(): boolean {
    const db = this.#store.db;
    try {
      withoutBusyWait(db, () => db.exec('BEGIN IMMEDIATE'));
    } catch {
      return false;
    }
    db.exec('ROLLBACK');
    return true;
  }

  /** Whether the segment is committed; a failure keeps it for the next attempt. */
  #commitHere(id: number, seg: Segment): boolean {
    try {
      const { rows, damage, gone } = seg.file ? readRows(seg.file) : { rows: [], damage: null, gone: false };
      const commit = () => this.#store.appendRows(rows, seg.updates);
      // A retry through a fault does not wait for a lock: the first attempt waited already.
      if ((this.#fault ? withoutBusyWait(this.#store.db, commit) : commit()) === null) {
        // Kept for the next attempt, which the fault's once-a-second retry makes.
        seg.failed = true;
        this.#beginFault('rows written ahead could not be committed');
        return false;
      }
      const told = seg.file ? retire(seg.file, damage) : null;
      // The file went while this thread read or set it aside: the writer thread, slow but not
      // stalled, committed it first, and its acknowledgement says what became of it (damage found).
      if ((gone || (damage !== null && told === null)) && this.#threadAcknowledged(id)) return true;
      if (told !== null) this.#countLost(seg, rows.length, told);
    } catch (err) {
      seg.failed = true;
      this.#fail('append', err);
      return false;
    }
    this.#done(id, seg);
    return true;
  }

  /** Whether a wait for the thread's acknowledgement of a segment ran out since `#commitInFlightHere` began. */
  #threadWaited = false;

  /**
   * Whether the thread has acknowledged segment `id` (and `#ack` has taken it), waiting for it as
   * for any segment — once per pass over the segments in flight: a file gone for another reason
   * (its directory removed) does not make each segment wait in turn.
   */
  #threadAcknowledged(id: number): boolean {
    const writer = this.#writer;
    if (id <= 0 || !writer?.alive || this.#threadWaited) return false;
    if (!writer.waitFor(id, this.#waitMs)) this.#threadWaited = true;
    return !this.#inFlight.has(id);
  }

  /**
   * A segment committed at its first attempt with fewer rows than were written to it: its file was
   * removed (with its directory, say) before the thread read it. Those answered events will never
   * be stored; they are counted with the rows dropped, and said once. After a retry a missing file
   * can also mean a thread that committed it and died before acknowledging: not counted then. A
   * file with damage in it (`damage`, what it was kept as) is said whatever the count.
   */
  #countLost(seg: Segment, rows: number, damage: string | null): void {
    const lost = Math.max(0, seg.keys.size - rows);
    if (damage === null && (seg.file === null || seg.retried || lost === 0)) return;
    this.#lostRows += lost;
    const why = damage ?? `${seg.file} was gone before its rows were committed`;
    this.#onError('append', new StoreError('SEAWALL_STORE_LOST', `${lost} answered events lost: ${why}`));
  }

  /** Rows of segments whose file was gone before their commit (`#countLost`). */
  #lostRows = 0;

  #done(id: number, seg: Segment): void {
    this.#inFlight.delete(id);
    this.#inFlightRows -= seg.keys.size;
    this.#inFlightUpdates -= seg.updates.length;
    this.#shares.remove(seg.sessions);
    this.#progressAt = performance.now();
    this.#stalled = false;
    this.#ease(seg.sessions);
  }

  /** Whether a row with this key is written ahead or held, not yet committed. */
  readonly #isPending = (key: ReplayKey): boolean => {
    if (this.#fileKeys.has(key) || this.#heldKeys.has(key)) return true;
    for (const seg of this.#inFlight.values()) if (seg.keys.has(key)) return true;
    return false;
  };
}
