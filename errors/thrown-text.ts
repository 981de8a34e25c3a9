/**
 * A thrown value as the text of an error message. Node passes only native errors whole from a
 * worker thread to its 'error' listener: a thread's uncaught better-sqlite3 `SqliteError` (an
 * open that fails: not a database, cannot open) arrives as a plain object of its own properties
 * (`{ code: 'SQLITE_NOTADB' }`) with no message, a thrown string as the string.
 */
import { inspect } from 'node:util';

/** Longest text made from a value that is neither an error nor carries a message or code. */
const MAX_INSPECTED = 200;

export function thrownText(value: unknown): string {
  if (value instanceof Error) return value.message || value.name;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const { message, code } = value as { message?: unknown; code?: unknown };
    if (typeof message === 'string' && message !== '') return message;
    if (typeof code === 'string' && code !== '') return code;
  }
  return inspect(value, { depth: 1, breakLength: Number.POSITIVE_INFINITY }).slice(0, MAX_INSPECTED);
}
