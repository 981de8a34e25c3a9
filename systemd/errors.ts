/**
 * Errors raised by the systemd/ layer. Callers branch on `code`, never on message text.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

export type SystemdErrorCode =
  /** libsystemd.so.0 (or libc) could not be loaded, so the systemd protocols are unavailable. */
  | 'SEAWALL_SYSTEMD_UNAVAILABLE'
  /**
   * The `env` object handed to a factory disagrees with the process environment that libsystemd
   * reads through getenv(3); libsystemd would act on a socket the caller did not name.
   */
  | 'SEAWALL_SYSTEMD_ENV_MISMATCH'
  /** sd_notify(3) returned a negative errno; `detail.errno` says why. */
  | 'SEAWALL_SYSTEMD_NOTIFY_FAILED'
  /** sd_watchdog_enabled(3) failed (malformed WATCHDOG_USEC or WATCHDOG_PID). */
  | 'SEAWALL_SYSTEMD_WATCHDOG_INVALID'
  /** sd_listen_fds(3) failed (malformed LISTEN_FDS or LISTEN_PID). */
  | 'SEAWALL_SYSTEMD_LISTEN_FDS_INVALID'
  /** sd_journal_sendv(3) returned a negative errno; the entry went to stderr instead. */
  | 'SEAWALL_SYSTEMD_JOURNAL_SEND_FAILED'
  /** A journal field name breaks the rules of systemd.journal-fields(7). */
  | 'SEAWALL_SYSTEMD_FIELD_INVALID'
  /** A journal entry whose priority is not 0..7 or whose MESSAGE_ID is not 32 lowercase hex digits. */
  | 'SEAWALL_SYSTEMD_ENTRY_INVALID';

/** A failure of the systemd integration, identified by a stable `code`. */
export class SystemdError extends SeawallError<SystemdErrorCode> {
  override readonly name = 'SystemdError';
}

/** Type guard for {@link SystemdError}, optionally narrowed to one code. */
export const isSystemdError = errorGuard(SystemdError);

/** Receives failures that the systemd layer absorbs instead of throwing (a missing library, a failed send). */
export type SystemdErrorHandler = (err: SystemdError) => void;
