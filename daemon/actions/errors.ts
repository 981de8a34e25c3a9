/** Errors of the action layer (kill enforcement, migration hooks). Callers branch on `code`. */
export type ActionErrorCode =
  /** A migrate decision names a hook the daemon config does not define. */
  | 'SEAWALL_ACTION_HOOK_UNKNOWN'
  /** A hook's configuration cannot work (empty argv, bad URL). */
  | 'SEAWALL_ACTION_HOOK_CONFIG'
  /** No pidfd could be opened for a session's VMM, so a kill cannot be enforced. */
  | 'SEAWALL_ACTION_PIDFD';

export class ActionError extends Error {
  override readonly name = 'ActionError';
  readonly code: ActionErrorCode;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: ActionErrorCode, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.code = code;
    this.detail = detail;
  }
}

export function isActionError(err: unknown, code?: ActionErrorCode): err is ActionError {
  return err instanceof ActionError && (code === undefined || err.code === code);
}
