/**
 * The write-ahead files on disk. `<store>.pending` takes the verdict path's appends; when its rows
 * are handed to the writer thread it is renamed `<store>.pending.<n>` (a segment) and a fresh
 * `<store>.pending` is opened. A segment is unlinked only once its rows are committed, so between
 * them the files always hold every row SQLite may not have: what a restart must recover.
 */
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { StoreError } from './errors.js';
import type { EventStore } from './event-store.js';
import type { StoreRow } from './inserts.js';
import { COL, EVENT_COLUMNS, type EventParams, type EventValues, valuesOfParams } from './rows.js';

/**
 * A row as one line of the file: its values as a JSON array in column order. Values are strings,
 * numbers and null only, so the plain stringify is exact; without the column names a line is about
 * half as long as the object it replaced, and cheaper to write and to parse.
 */
export const encodeRow = (row: StoreRow): string => JSON.stringify(row.values);

/**
 * One line back into its values, in either encoding: the array above, or the object
 * `{"params":{…},"poison":…,"key":…}` that seawall wrote before it (a daemon killed on that
 * version leaves such files, and a newer one must recover them). null for a torn or foreign line.
 */
export function decodeLine(line: string): EventValues | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return null; // a torn last line from a kill mid-write: that batch's verdicts never left
  }
  if (Array.isArray(parsed))
    return parsed.length === EVENT_COLUMNS.length ? (parsed as unknown as EventValues) : null;
  const params = (parsed as { params?: EventParams } | null)?.params;
  if (typeof params !== 'object' || params === null) return null;
  const values = valuesOfParams(params);
  // Written by a seawall before events had an order: their seq stood for it.
  values[COL.ord] ??= values[COL.seq];
  return values;
}

/** `<store>.pending.<n>`. */
export const segmentPath = (pendingPath: string, n: number): string => `${pendingPath}.${n}`;

/** The rows in a write-ahead file; none when it does not exist (already committed and unlinked). */
export function readRows(path: string): EventValues[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const rows: EventValues[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const values = decodeLine(line);
    if (values) rows.push(values);
  }
  return rows;
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
 * Inserts every row a previous run left in `pending` and its segments (inserts are idempotent),
 * removes the segments and empties `pending`; returns how many rows. Throws RECOVERY when the store
 * will not take them: the daemon does not start over rows it would lose.
 */
export function recoverPending(store: EventStore, pendingPath: string): number {
  let count = 0;
  for (const file of [...listSegments(pendingPath), pendingPath]) {
    const rows = readRows(file);
    if (rows.length > 0 && store.appendRows(rows) === null) {
      throw new StoreError(
        'SEAWALL_STORE_RECOVERY',
        `cannot move ${rows.length} pending rows from ${file} into the store`,
        {
          file,
          rows: rows.length,
        },
      );
    }
    count += rows.length;
    if (file !== pendingPath) removeSegment(file);
  }
  const fd = openSync(pendingPath, 'a', 0o600);
  try {
    ftruncateSync(fd, 0);
  } finally {
    closeSync(fd);
  }
  return count;
}
