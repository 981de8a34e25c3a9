/**
 * What the write-ahead layer keeps in memory: the replay keys of every row not yet committed
 * (counted, since a key may be pending twice), and the rows answered while the store is faulty —
 * bounded, past the bound the oldest of the VMs holding the most dropped and reported, and copied
 * to a file while one can be written — with the health the layer reports.
 */
import { closeSync, renameSync } from 'node:fs';
import { rowId } from './event-columns.js';
import { HeldByVm } from './held-by-vm.js';
import type { StoreRow } from './inserts.js';
import { encodeRow } from './row-lines.js';
import type { ReplayKey } from './rows.js';
import { appendLines, openAppend, removeSegment } from './segments.js';

/** Whether answered events are reaching the store. */
export interface StoreHealth {
  healthy: boolean;
  /** What went wrong; null when healthy. */
  error: string | null;
  /** When the current fault began (ms since the epoch); null when healthy. */
  sinceMs: number | null;
  /** Answered events held until the store takes them: in memory, or past the bound only in their copy. */
  heldRows: number;
  /** Rows dropped past the bound since start. */
  droppedRows: number;
  /** APPLIED results and session, action and policy rows in memory, not yet committed. */
  heldUpdates: number;
  /** Those dropped past their bound since start (store/held-updates.ts). */
  droppedUpdates: number;
}

/**
 * Replay keys of rows written ahead or held and not yet committed, as many times as each is
 * pending: by VM, then seq, then the exit times pending under that seq (one, nearly always; a
 * plugin may reuse a seq once its verdict has arrived, and a key may be pending twice). It holds
 * the VM id its session shares and the exit time the message carries, no text made for the key.
 * The write-ahead layer keeps one per file, so a segment's commit lets go of its keys at once
 * instead of forgetting each (store/write-ahead.ts).
 */
export class PendingKeys {
  readonly #byVm = new Map<string, Map<number, bigint | bigint[]>>();
  #size = 0;

  /** Keys pending, each as many times as it was added. */
  get size(): number {
    return this.#size;
  }

  has(key: ReplayKey): boolean {
    const times = this.#byVm.get(key.vm)?.get(key.seq);
    if (times === undefined) return false;
    return typeof times === 'bigint' ? times === key.time : times.includes(key.time);
  }

  add(key: ReplayKey): void {
    this.#size++;
    let bySeq = this.#byVm.get(key.vm);
    if (bySeq === undefined) {
      bySeq = new Map();
      this.#byVm.set(key.vm, bySeq);
    }
    const times = bySeq.get(key.seq);
    if (times === undefined) bySeq.set(key.seq, key.time);
    else if (typeof times === 'bigint') bySeq.set(key.seq, [times, key.time]);
    else times.push(key.time);
  }

  /** Forgets one of each: a key pending twice stays pending once. */
  forget(keys: readonly ReplayKey[]): void {
    for (const key of keys) {
      const bySeq = this.#byVm.get(key.vm);
      const times = bySeq?.get(key.seq);
      if (bySeq === undefined || times === undefined) continue;
      if (typeof times === 'bigint') {
        if (times !== key.time) continue;
      } else {
        const i = times.indexOf(key.time);
        if (i < 0) continue;
        times.splice(i, 1);
        this.#size--;
        if (times.length > 0) continue;
      }
      if (typeof times === 'bigint') this.#size--;
      bySeq.delete(key.seq);
      // A stream of new VM ids leaves nothing behind.
      if (bySeq.size === 0) this.#byVm.delete(key.vm);
    }
  }
}

/**
 * Rows answered while the store is faulty, in the order held, at most `max`; and, with a `copy`
 * path, the first `max` of them also appended there (store/segments.ts `heldPath`), which the next
 * start recovers: a fault that leaves files writable — a commit that fails, the database locked by
 * another process — no longer costs them with a kill -9. So do the first `max` updates received
 * meanwhile (`copyUpdate`: APPLIED results, session, action and policy rows). Past `max` rows
 * leave memory from the VMs holding the most, each one's oldest first (store/held-by-vm.ts): a
 * VM's flood pushes out its own rows, not a quieter VM's few. Those the copy holds are not lost —
 * their keys stay pending, and when the fault clears the copy becomes a segment (`takeCopy`) —
 * and the others are dropped and counted.
 * After a failed append no other is tried until `closeCopy` (once a second): a full disk must not
 * cost every verdict a failed write.
 */
export class HeldRows {
  readonly #rows = new HeldByVm();
  dropped = 0;
  readonly #max: number;
  readonly #keys: PendingKeys;
  readonly #onDrop: (n: number) => void;
  readonly #copy: string | null;
  /** The copy's descriptor: -1 until opened, -2 after a failure (until `closeCopy`). */
  #fd = -1;
  /** Rows in the copy. */
  copied = 0;
  /** Update lines in the copy (store/update-lines.ts). */
  updatesCopied = 0;
  /** The held rows appended to the copy. */
  #inCopy = new Set<StoreRow>();
  /** Keys of the rows dropped past the bound that the copy holds: still pending, until `takeCopy`. */
  #copyOnly: ReplayKey[] = [];
  /** Their lowest id (Infinity: none). */
  #copyOnlyLow = Number.POSITIVE_INFINITY;

  constructor(max: number, keys: PendingKeys, onDrop: (n: number) => void, copy: string | null = null) {
    this.#max = max;
    this.#keys = keys;
    this.#onDrop = onDrop;
    this.#copy = copy;
  }

  get length(): number {
    return this.#rows.length;
  }

  /**
   * Holds `rows` (their keys count as pending); past the bound the VMs holding the most lose their
   * oldest, dropped.
   */
  hold(rows: readonly StoreRow[]): void {
    for (const row of rows) {
      // Held as its values: a row the verdict path made keeps its event's record until asked
      // (store/event-columns.ts `RecordRow`), and a fault may hold 200,000 of them.
      void row.values;
      this.#keys.add(row.key);
    }
    this.#rows.push(rows);
    this.#append(rows);
    const drop = this.#rows.trim(this.#max);
    if (drop.length > 0) {
      // Those the copy holds are not lost: `takeCopy` stores them from it (or the next start does).
      const lost: ReplayKey[] = [];
      for (const row of drop) {
        if (!this.#inCopy.delete(row)) lost.push(row.key);
        else {
          this.#copyOnly.push(row.key);
          this.#copyOnlyLow = Math.min(this.#copyOnlyLow, rowId(row) ?? Number.POSITIVE_INFINITY);
        }
      }
      this.#lose(lost);
    }
  }

  #lose(keys: readonly ReplayKey[]): void {
    if (keys.length === 0) return;
    this.dropped += keys.length;
    this.#keys.forget(keys);
    this.#onDrop(keys.length);
  }

  /** Rows dropped from memory past the bound that only the copy holds. */
  get copyOnly(): number {
    return this.#copyOnly.length;
  }

  /** The keys of the rows only the copy holds, and their lowest id; none are left. */
  #takeCopyOnly(): { keys: ReplayKey[]; lowId: number } {
    const taken = { keys: this.#copyOnly, lowId: this.#copyOnlyLow };
    this.#copyOnly = [];
    this.#copyOnlyLow = Number.POSITIVE_INFINITY;
    return taken;
  }

  /**
   * When the copy holds rows dropped from memory, moves it to `to` (a segment, which the next
   * start recovers like any) for the caller to commit: returns their keys, no longer held here,
   * and their lowest id; null when it holds none. A copy gone meanwhile (with its directory) loses
   * them: counted as dropped. The caller has written the rows in memory ahead first (the copy's
   * own copies of them are inserted twice, idempotently).
   */
  takeCopy(to: string): { keys: ReplayKey[]; lowId: number } | null {
    if (this.#copy === null || this.#copyOnly.length === 0) return null;
    this.closeCopy();
    try {
      renameSync(this.#copy, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.#lose(this.#takeCopyOnly().keys);
      return null;
    }
    const taken = this.#takeCopyOnly();
    this.#keys.forget(taken.keys);
    this.#inCopy.clear();
    this.copied = 0;
    this.updatesCopied = 0;
    return taken;
  }

  /**
   * The lowest id of the rows held and of those only the copy holds (Infinity: none), in time of
   * the VMs held whatever the rows' number: not the first's, since a lost file's rows, older, can
   * be held after newer ones.
   */
  lowestId(): number {
    return Math.min(this.#rows.lowestId(), this.#copyOnlyLow);
  }

  /**
   * The held rows, in the order held (whatever their VM), without removing them (they stay held
   * until `clear`).
   */
  peek(): readonly StoreRow[] {
    return this.#rows.all();
  }

  /**
   * The copy went with its directory (the store was lost): the rows dropped from memory that only
   * it held are lost (counted), and the rows held are copied again into the copy made anew.
   */
  copyGone(): void {
    this.#lose(this.#takeCopyOnly().keys);
    this.#inCopy.clear();
    this.copied = 0;
  }

  /** Forgets the held rows, their keys and their copy: the caller wrote them ahead, keys and all. */
  clear(): void {
    this.#keys.forget(this.#rows.all().map((r) => r.key));
    this.#keys.forget(this.#takeCopyOnly().keys);
    this.#inCopy.clear();
    this.#rows.clear();
    this.closeCopy();
    // Written ahead first: a kill between the two leaves them twice, and inserts are idempotent.
    // Removed even when nothing was copied: an append that failed may have left it empty.
    if (this.#copy !== null) removeSegment(this.#copy);
    this.copied = 0;
    this.updatesCopied = 0;
  }

  /** Appends an update's line to the copy (the first `max` of a fault's). */
  copyUpdate(line: string): void {
    if (this.updatesCopied < this.#max && this.#appendLines([line])) this.updatesCopied++;
  }

  /**
   * Closes the copy's descriptor, leaving the file for the next start (or for `clear`); the next
   * append, even after a failed one, opens it again (its directory may be new).
   */
  closeCopy(): void {
    const fd = this.#fd;
    this.#fd = -1;
    try {
      if (fd >= 0) closeSync(fd);
    } catch {
      // already unusable; closed all the same (close(2) frees the descriptor even on error)
    }
  }

  #append(rows: readonly StoreRow[]): void {
    // No copy, or one that failed until `closeCopy`: the rows are not encoded for nothing, on the
    // verdict path, through the fault.
    if (this.copied >= this.#max || this.#copy === null || this.#fd === -2) return;
    const take = rows.slice(0, this.#max - this.copied);
    if (!this.#appendLines(take.map(encodeRow))) return;
    this.copied += take.length;
    for (const row of take) this.#inCopy.add(row);
  }

  /** Appends whole lines to the copy; false when there is none, or it could not take them. */
  #appendLines(lines: readonly string[]): boolean {
    if (this.#copy === null || this.#fd === -2) return false;
    try {
      const opening = this.#fd === -1;
      if (opening) this.#fd = openAppend(this.#copy);
      // A newline first whenever it is opened: a write the disk cut short that could not be cut
      // off again may end it, and the next line must not read as that one's rest.
      appendLines(this.#fd, opening ? ['', ...lines] : lines);
      return true;
    } catch {
      // The fault itself, most likely (a full disk, the directory gone): held in memory only.
      this.closeCopy();
      this.#fd = -2;
      return false;
    }
  }
}
