/** Which message types each side may receive (docs/protocol.md "Messages"). */
import { MSG } from './constants.js';

export const DAEMON_ACCEPTS: ReadonlySet<number> = new Set([
  MSG.HELLO,
  MSG.EVENT_SEA,
  MSG.EVENT_NISV,
  MSG.EVENT_MMIO,
  MSG.EVENT_SIGBUS,
  MSG.APPLIED,
  MSG.HEARTBEAT,
  MSG.GOODBYE,
]);

export const PLUGIN_ACCEPTS: ReadonlySet<number> = new Set([
  MSG.WELCOME,
  MSG.REJECT,
  MSG.VERDICT,
  MSG.HEARTBEAT,
  MSG.ERROR,
  MSG.GOODBYE,
]);
