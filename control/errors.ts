/**
 * Errors of the control socket, on both ends. The server sends `code` and `message` in its error
 * responses; the client raises the same class with the code it received, so a CLI command branches
 * on `code` whether the failure was local (daemon not running) or the daemon's answer.
 */
import { errorGuard, SeawallError } from '../errors/index.js';

export type ControlErrorCode =
  /** Not JSON, not an object, a missing `cmd`, or arguments of the wrong type. */
  | 'SEAWALL_CONTROL_BAD_REQUEST'
  /** A request line over the size bound; the connection is closed after this answer. */
  | 'SEAWALL_CONTROL_TOO_LARGE'
  /** `cmd` names no command. */
  | 'SEAWALL_CONTROL_UNKNOWN_COMMAND'
  /** A mutating command from a peer that is neither root nor the daemon's own uid. */
  | 'SEAWALL_CONTROL_FORBIDDEN'
  /** Too many control connections at once; this one is answered and closed. */
  | 'SEAWALL_CONTROL_BUSY'
  /** The command was understood but could not be carried out (e.g. the store failed). */
  | 'SEAWALL_CONTROL_FAILED'
  /** The control socket could not be bound (in use, no permission). */
  | 'SEAWALL_CONTROL_LISTEN'
  /**
   * Client side: nothing listens at the socket path, or it may not be opened, or the daemon closed
   * the connection before answering (it stopped with the request in hand).
   */
  | 'SEAWALL_CONTROL_UNAVAILABLE'
  /** Client side: no answer within the deadline. */
  | 'SEAWALL_CONTROL_TIMEOUT'
  /** Client side: the answer was not a well-formed response. */
  | 'SEAWALL_CONTROL_BAD_RESPONSE';

export class ControlError extends SeawallError<ControlErrorCode> {
  override readonly name = 'ControlError';

  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, {}, options);
  }
}

export const isControlError = errorGuard(ControlError);

const KNOWN = new Set<string>([
  'SEAWALL_CONTROL_BAD_REQUEST',
  'SEAWALL_CONTROL_TOO_LARGE',
  'SEAWALL_CONTROL_UNKNOWN_COMMAND',
  'SEAWALL_CONTROL_FORBIDDEN',
  'SEAWALL_CONTROL_BUSY',
  'SEAWALL_CONTROL_FAILED',
  'SEAWALL_CONTROL_LISTEN',
  'SEAWALL_CONTROL_UNAVAILABLE',
  'SEAWALL_CONTROL_TIMEOUT',
  'SEAWALL_CONTROL_BAD_RESPONSE',
]);

/** Narrows a code received from a peer; an unknown one is reported as a bad response. */
export function controlErrorCode(code: unknown): ControlErrorCode | null {
  return typeof code === 'string' && KNOWN.has(code) ? (code as ControlErrorCode) : null;
}
