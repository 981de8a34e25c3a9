/**
 * Errors raised by the event store. Callers branch on `code`, never on message text. Only opening
 * the store throws to the caller; failures on the event path are reported through the store's
 * `onError` callback and counted (`seawall_store_errors_total{op}`), never thrown into a verdict.
 */
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
  | 'SEAWALL_STORE_CLOSED';

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  /** Machine-readable detail (the path, the versions, the option). */
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(
    code: StoreErrorCode,
    message: string,
    detail: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.detail = detail;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/**
 * The operations reported to `onError`, used as the `op` label of `seawall_store_errors_total`.
 * A closed set so the metric's cardinality is known.
 */
export type StoreOp = 'open' | 'append' | 'applied' | 'session' | 'action' | 'prune' | 'query' | 'close';
