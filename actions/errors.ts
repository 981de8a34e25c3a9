/** Errors of the action layer (kill enforcement, migration hooks). Callers branch on `code`. */
import { errorGuard, SeawallError } from '../errors/index.js';

export type ActionErrorCode =
  /** A hook's configuration cannot work (empty argv, bad URL). */
  | 'SEAWALL_ACTION_HOOK_CONFIG'
  /** A bound given to the action layer is out of range (poisoned-page table sizes). */
  | 'SEAWALL_ACTION_INVALID_OPTION';

export class ActionError extends SeawallError<ActionErrorCode> {
  override readonly name = 'ActionError';
}

export const isActionError = errorGuard(ActionError);
