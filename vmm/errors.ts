/** Errors of the plugin side (reference client, attach client, simulator). Callers branch on `code`. */
import { errorGuard, SeawallError } from '../errors/index.js';

export type VmmErrorCode =
  /** HELLO was not answered with WELCOME: rejected (`detail.wireCode`), timed out, or closed first. */
  | 'SEAWALL_VMM_HANDSHAKE'
  /** The daemon sent a message a plugin never receives. */
  | 'SEAWALL_VMM_PROTOCOL'
  /** The daemon refused an attach or detach, or the channel failed (`detail.status`, -1 when closed). */
  | 'SEAWALL_VMM_ATTACH_REFUSED'
  /** The daemon did not answer an attach or detach within the client's `replyTimeoutMs`. */
  | 'SEAWALL_VMM_ATTACH_TIMEOUT'
  /** An option of the client or the simulator is out of range or malformed. */
  | 'SEAWALL_VMM_INVALID_OPTION';

export class VmmError extends SeawallError<VmmErrorCode> {
  override readonly name = 'VmmError';
}

export const isVmmError = errorGuard(VmmError);
