/** Errors the daemon's composition raises at start or reload. Callers branch on `code`. */
import { errorGuard, SeawallError } from '../errors/index.js';

export type DaemonErrorCode =
  /** The config file is unreadable, not YAML, or fails its schema; every problem is in the message. */
  | 'SEAWALL_DAEMON_CONFIG'
  /** The policy named at start does not load; the daemon does not start with a half-understood policy. */
  | 'SEAWALL_DAEMON_POLICY'
  /** Another process already serves the plugin socket's path. */
  | 'SEAWALL_DAEMON_SOCKET_IN_USE'
  /**
   * A runtime or state directory another user could change (foreign owner, group/world writable,
   * a symlink): the daemon refuses to start rather than put its sockets or store there.
   */
  | 'SEAWALL_DAEMON_UNSAFE_PATH';

export class DaemonError extends SeawallError<DaemonErrorCode> {
  override readonly name = 'DaemonError';
}

export const isDaemonError = errorGuard(DaemonError);
