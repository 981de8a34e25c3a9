/**
 * The one base class of every error seawall raises. Each folder declares its own subclass with a
 * closed union of stable codes (`SEAWALL_KVM_*`, `SEAWALL_STORE_*`, …); callers branch on `code`
 * through the folder's guard or {@link isSeawallError}, never on message text.
 */
export abstract class SeawallError<C extends string = string> extends Error {
  /** Stable, machine-readable: `SEAWALL_<FOLDER>_<WHAT>`. */
  readonly code: C;
  /** Machine-readable detail (the errno, the field, the path, the limit). */
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, detail: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.detail = detail;
  }
}

/** True for any seawall error, optionally narrowed to one code. */
export function isSeawallError(err: unknown, code?: string): err is SeawallError {
  return err instanceof SeawallError && (code === undefined || err.code === code);
}

/**
 * Builds the guard of one subclass: `isStoreError(err, 'SEAWALL_STORE_OPEN')`. The class is taken
 * as a value so the guard narrows to it and to its code union.
 */
export function errorGuard<E extends SeawallError>(
  cls: abstract new (...args: never[]) => E,
): (err: unknown, code?: E['code']) => err is E {
  return (err: unknown, code?: E['code']): err is E =>
    err instanceof cls && (code === undefined || err.code === code);
}
