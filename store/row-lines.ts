/**
 * Event rows as lines of text in the write-ahead files: what seawall wrote for every row before the
 * binary records (store/row-codec.ts), and still writes for the rows it holds through a fault
 * (store/held-rows.ts); and what a row read back from either must be for the store to take it.
 */
import type { StoreRow } from './inserts.js';
import {
  COL,
  EVENT_COLUMNS,
  type EventParams,
  type EventValues,
  MAX_ROW_ID,
  valuesOfParams,
} from './rows.js';

/**
 * A row as one line of the file: its values as a JSON array in column order. Values are strings,
 * numbers and null only, so the plain stringify is exact.
 */
export const encodeRow = (row: StoreRow): string => JSON.stringify(row.values);

/** Columns every row has (NOT NULL in the schema), by their index in `EventValues`, and their type. */
const REQUIRED: ReadonlyArray<[number, 'string' | 'number']> = (
  [
    ['boot_id', 'string'],
    ['session_id', 'number'],
    ['seq', 'number'],
    ['time_ms', 'number'],
    ['vm', 'string'],
    ['labels', 'string'],
    ['kind', 'string'],
    ['severity', 'string'],
    ['replay', 'number'],
    ['ord', 'number'],
  ] as const
).map(([c, t]) => [EVENT_COLUMNS.indexOf(c), t]);

/**
 * A row the store can take: a value of a column it requires, an id that is a positive integer (or
 * none: written before schema 9), and of every other column a string, number, BigInt or null.
 */
export function wellFormed(values: readonly unknown[]): boolean {
  for (const v of values)
    if (v !== null && typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'bigint') return false;
  for (const [i, type] of REQUIRED) if (typeof values[i] !== type) return false;
  const id = values[COL.id];
  return id === null || (Number.isSafeInteger(id) && (id as number) > 0 && (id as number) <= MAX_ROW_ID);
}

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
  if (Array.isArray(parsed)) {
    // Written by a seawall before schema 9, without the row's id (the last column).
    if (parsed.length === COL.id) parsed.push(null);
    return parsed.length === EVENT_COLUMNS.length && wellFormed(parsed)
      ? (parsed as unknown as EventValues)
      : null;
  }
  const params = (parsed as { params?: EventParams } | null)?.params;
  if (typeof params !== 'object' || params === null) return null;
  const values = valuesOfParams(params);
  // Written by a seawall before events had an order: their seq stood for it; nor an id.
  values[COL.ord] ??= values[COL.seq];
  values[COL.id] ??= null;
  return wellFormed(values) ? values : null;
}
