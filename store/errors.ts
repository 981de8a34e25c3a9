/**
 * Errors raised by the event store. Callers branch on `code`, never on message text. Only opening
 * the store throws to the caller; failures on the event path are reported through the store's
 * `onError` callback and counted (`seawall_store_errors_total{op}`), never thrown into a verdict.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

export type StoreErrorCode =
  /** The database file could not be opened or configured (permissions, not a database, …). */
  | 'SEAWALL_STORE_OPEN'
  /** The file was written by a newer seawall: its schema version is above what this code knows. */
  | 'SEAWALL_STORE_SCHEMA_TOO_NEW'
  /** A forward migration failed; the transaction was rolled back and the file is unchanged. */
  | 'SEAWALL_STORE_MIGRATION'
  /** An option is out of range (retention age or size, chunk size, …). */
  | 'SEAWALL_STORE_INVALID_OPTION'
  /** The store was used after `close()`. */
  | 'SEAWALL_STORE_CLOSED'
  /** The writer thread died or could not commit a segment; `detail` says which and why. */
  | 'SEAWALL_STORE_WRITER'
  /** Rows left in the write-ahead file by a previous run could not be moved into the store. */
  | 'SEAWALL_STORE_RECOVERY'
  /**
   * The store's directory or file was removed or replaced while open: what is written to the open
   * file would be lost. The store holds answered events in memory and reopens when it can.
   */
  | 'SEAWALL_STORE_LOST'
  /** A read on the reader thread (for the control socket) failed, timed out, or lost its thread. */
  | 'SEAWALL_STORE_READER'
  /**
   * A retention pass on the retention thread failed, or lost its thread; or the tables it never
   * deletes by size (poisoned pages …) alone exceed `maxBytes`.
   */
  | 'SEAWALL_STORE_PRUNE'
  /** Another daemon holds the store (one daemon per state directory); `detail.pid` names it. */
  | 'SEAWALL_STORE_LOCKED';

export class StoreError extends SeawallError<StoreErrorCode> {
  override readonly name = 'StoreError';
}

export const isStoreError = errorGuard(StoreError);

/**
 * The operations reported to `onError`, used as the `op` label of `seawall_store_errors_total`.
 * A closed set so the metric's cardinality is known.
 */
export type StoreOp =
  | 'open'
  | 'append'
  | 'applied'
  | 'session'
  | 'action'
  | 'policy'
  | 'prune'
  | 'query'
  | 'close';
