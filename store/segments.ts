/**
 * The write-ahead files on disk. `<store>.pending` takes the verdict path's appends; when its rows
 * are handed to the writer thread it is renamed `<store>.pending.<n>` (a segment) and a fresh
 * `<store>.pending` is opened. A segment is unlinked only once its rows are committed, so between
 * them the files always hold every row SQLite may not have: what a restart must recover.
 */
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';
import { MovedRows } from './moved-rows.js';
import { readWriteAhead } from './row-codec.js';
import { decodeLine, wellFormed } from './row-lines.js';
import { COL, type EventValues } from './rows.js';
import { decodeUpdate, isUpdateLine, type WrittenAhead } from './update-lines.js';

/**
 * The largest write-ahead file read back. The daemon's own are far smaller (a segment holds at most
 * `maxPending` rows, ~4 MB; rows held through a fault, written at once, at most ~80 MB).
 */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/**
 * Opens a write-ahead file to append to, creating it (0600): never through a symlink or a hard
 * link, and only a regular file — a link or a FIFO planted in the state directory must not be
 * written through or block the daemon.
 */
export function openAppend(path: string): number {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    0o600,
  );
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new StoreError('SEAWALL_STORE_OPEN', `${path} is not a regular file`, { path });
  }
  // A hard link is another file's name too: appending would write into that file.
  if (st.nlink !== 1) {
    closeSync(fd);
    throw new StoreError(
      'SEAWALL_STORE_OPEN',
      `${path} has ${st.nlink} hard links; the store's files must be its own`,
      {
        path,
      },
    );
  }
  return fd;
}

/**
 * Appends `data` whole, or throws with the file as it was: a write that stops part-way (a disk
 * that fills mid-batch returns a short count, not an error) is cut off again, so that no torn
 * batch stays in the file while its rows are counted as written. When even the cut fails, the
 * error says which file holds torn bytes from where (`tornBytes`): nothing may be appended after
 * them, or a reader would take what follows for the rest of the torn record.
 */
export function appendWhole(fd: number, data: string | Buffer): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const want = bytes.length;
  const n = writeSync(fd, bytes);
  if (n === want) return;
  const st = fstatSync(fd);
  const torn: TornBytes = { ino: st.ino, from: st.size - n };
  let cut = '';
  try {
    ftruncateSync(fd, torn.from);
  } catch (err) {
    cut = `, and the ${n} bytes written could not be cut off (${(err as Error).message})`;
  }
  throw Object.assign(new Error(`short write to the write-ahead file: ${n} of ${want} bytes${cut}`), {
    code: 'ENOSPC',
    torn: cut === '' ? null : torn,
  });
}

/** Bytes of a torn write left in a file: its inode, and the offset they begin at. */
export interface TornBytes {
  ino: number;
  from: number;
}

/** What torn bytes `appendWhole`'s failed write left that it could not cut off; null for none. */
export function tornBytes(err: unknown): TornBytes | null {
  return (err as { torn?: TornBytes | null } | null)?.torn ?? null;
}

/** Cuts `torn` off the file open as `fd` — unless it is another file now (a new one, say). */
export function cutTorn(fd: number, torn: TornBytes): void {
  const st = fstatSync(fd);
  if (st.ino === torn.ino && st.size > torn.from) ftruncateSync(fd, torn.from);
}

/** Appends `lines` whole (`appendWhole`), each ended by a newline; nothing when there are none. */
export function appendLines(fd: number, lines: readonly string[]): void {
  if (lines.length > 0) appendWhole(fd, `${lines.join('\n')}\n`);
}

/** `<store>.pending.<n>`. */
export const segmentPath = (pendingPath: string, n: number): string => `${pendingPath}.${n}`;

/** `<store>.pending.held`: a copy of the rows held in memory through a fault (store/held-rows.ts). */
export const heldPath = (pendingPath: string): string => `${pendingPath}.held`;

/**
 * The rows in a write-ahead file; none, and `gone`, when it does not exist (already committed and
 * unlinked).
 * Throws for a file that is not one of the daemon's: a symlink, a FIFO or anything not regular (not
 * followed, never waited on), or one past MAX_FILE_BYTES. Rows are binary records
 * (store/row-codec.ts) or JSON lines, in any mix. A record or line that is not a well-formed row is
 * skipped, and a torn last one ends the file; with `updates`, the updates among the lines go there
 * (store/update-lines.ts), in the file's order. Two things come back as `damage`, whose rows are
 * lost unless someone reads the file by hand (`retire` keeps it for that): a record whose length
 * misses its newline, inside the file or past its end where the record's columns end inside it
 * (store/row-codec.ts), which ends it (what follows is damaged), and whole records
 * that are not rows this seawall can read — damaged, or written by a newer seawall. A line that is
 * not a row is skipped without a word: seawall writes them only through a fault, a torn last one
 * is the usual end of a killed daemon's file, and a newer seawall's kinds of update lines are meant
 * to be skipped (store/update-lines.ts).
 */
export function readRows(
  path: string,
  updates?: WrittenAhead[],
): { rows: EventValues[]; damage: Damage | null; gone?: true } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { rows: [], damage: null, gone: true };
    throw err;
  }
  let bytes: Buffer;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_FILE_BYTES)
      throw new Error(`${st.size} bytes, more than the ${MAX_FILE_BYTES} read back`);
    bytes = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const rows: EventValues[] = [];
  let unreadable = 0;
  const cutAt = readWriteAhead(
    bytes,
    (values) => {
      if (values !== null && wellFormed(values)) rows.push(values as unknown as EventValues);
      else unreadable++;
    },
    (line) => {
      // Told apart without parsing them: the writer thread reads a result per event in a storm.
      if (isUpdateLine(line)) {
        const u = updates && decodeUpdate(line);
        if (u) updates.push(u);
        return;
      }
      const values = decodeLine(line);
      if (values) rows.push(values);
    },
  );
  if (cutAt < 0 && unreadable === 0) return { rows, damage: null };
  return {
    rows,
    damage: { path, cutAt: cutAt < 0 ? null : cutAt, size: bytes.length, unreadable, rows: rows.length },
  };
}

/** What of a write-ahead file `readRows` could not read. */
export interface Damage {
  path: string;
  /** The offset of a record whose length is damaged: bytes from there to `size` were not read. */
  cutAt: number | null;
  size: number;
  /** Whole records (before any cut) that are not rows this seawall can read. */
  unreadable: number;
  /** Rows read. */
  rows: number;
}

/**
 * A write-ahead file whose rows are committed: removed, or, when `readRows` found damage in it,
 * kept aside for the operator, who may read the rest of it by hand. Returns what to tell the
 * operator of a damaged one, else null (also when another reader set it aside first).
 */
export function retire(file: string, damage: Damage | null): string | null {
  if (damage === null) {
    removeSegment(file);
    return null;
  }
  const what: string[] = [];
  if (damage.unreadable > 0)
    what.push(
      `${damage.unreadable} of its records are not rows this seawall can read (damaged, or written by ` +
        'a newer seawall)',
    );
  if (damage.cutAt !== null)
    what.push(
      `bytes ${damage.cutAt}–${damage.size} are not records seawall writes (a record's length does ` +
        'not end at its newline, nor where a write cut off would), and the rows in them cannot be read',
    );
  const aside = setAside(file);
  if (aside === null) return null;
  return `${damage.path}: ${what.join('; ')}; the ${damage.rows} rows read are stored; the file is kept as ${aside}`;
}

/**
 * Renames a write-ahead file out of the daemon's way, `<file>.set-aside-<ms>`; returns the new name,
 * or null when the file is gone: the other reader of a segment (writer thread or event loop) set it
 * aside first, and says so.
 */
function setAside(file: string): string | null {
  const aside = `${file}.set-aside-${Date.now()}`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return aside;
}

/** Every segment a previous run left, oldest first (rotation numbers grow). */
export function listSegments(pendingPath: string): string[] {
  const prefix = `${basename(pendingPath)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(pendingPath));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
    .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)))
    .map((n) => join(dirname(pendingPath), n));
}

/** Unlinks a committed segment; a missing file is fine (recovery or a fallback got it first). */
export function removeSegment(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * Inserts every row a previous run left in `pending`, its segments and the copy of the rows it held
 * through a fault (`heldPath`; inserts are idempotent), removes the segments and the copy and
 * empties `pending`; returns how many rows. Throws RECOVERY when the store
 * will not take them: the daemon does not start over rows it would lose. A file that is not one of
 * the daemon's (see readRows) is renamed aside, `<file>.set-aside-<ms>`, and told to `onSetAside`:
 * the daemon starts, and the file is left for the operator. A row under an id that a stored row of
 * another boot holds (a file set aside at an earlier start, renamed back since: store/moved-rows.ts)
 * is stored last, under a new id.
 */
export function recoverPending(
  store: EventStore,
  pendingPath: string,
  onSetAside: (file: string, err: StoreError) => void = () => {},
): number {
  let count = 0;
  const moved = new MovedRows(store.db);
  for (const file of [...listSegments(pendingPath), heldPath(pendingPath), pendingPath]) {
    let read: ReturnType<typeof readRows>;
    const updates: WrittenAhead[] = [];
    try {
      read = readRows(file, updates);
    } catch (err) {
      const aside = setAside(file);
      const why = (err as Error).message;
      onSetAside(
        file,
        new StoreError('SEAWALL_STORE_RECOVERY', `${file} set aside as ${aside}: ${why}`, { file }),
      );
      continue;
    }
    const { rows, damage } = read;
    storeRecovered(store, moved.take(rows), file);
    count += rows.length;
    // A result whose row is not stored waits for it; an update that cannot be stored is reported,
    // and costs only its own record (an event's outcome, a session's, action's or policy's row).
    if (updates.length > 0) store.recoverUpdates(updates);
    // The live file is emptied below rather than removed, unless it is damaged.
    if (file === pendingPath && damage === null) continue;
    const told = retire(file, damage);
    if (told !== null) onSetAside(file, new StoreError('SEAWALL_STORE_RECOVERY', told, { file }));
  }
  const left = moved.left();
  const first = left.length > 0 ? store.giveIds(left.length) : 0;
  storeRecovered(
    store,
    left.map((v, i) => {
      const row = [...v] as EventValues;
      row[COL.id] = first + i;
      return row;
    }),
    'files renamed back (rows under ids given again, under new ids)',
  );
  store.recovered();
  const fd = openAppend(pendingPath);
  try {
    ftruncateSync(fd, 0);
  } finally {
    closeSync(fd);
  }
  return count;
}

/** Inserts rows read back at start; throws RECOVERY when the store will not take them. */
function storeRecovered(store: EventStore, rows: readonly EventValues[], from: string): void {
  if (rows.length > 0 && store.appendRows(rows) === null)
    throw new StoreError(
      'SEAWALL_STORE_RECOVERY',
      `cannot move ${rows.length} pending rows from ${from} into the store`,
      {
        file: from,
        rows: rows.length,
      },
    );
}
