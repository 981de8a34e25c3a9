/** Errors of the vCPU attach channel. Callers branch on `code`, never on message text. */
import { errorGuard, SeawallError } from '../errors/index.js';

export type AttachErrorCode =
  /** The attach socket could not be created or served. */
  'SEAWALL_ATTACH_LISTEN';

export class AttachError extends SeawallError<AttachErrorCode> {
  override readonly name = 'AttachError';
}

export const isAttachError = errorGuard(AttachError);
