/**
 * Who may run which control command. The socket's mode (0600, or what the .socket unit sets) is
 * the first gate: whoever can open it may read. Mutating commands additionally need the peer —
 * as SO_PEERCRED reports it (unix(7)), not as it claims — to be root or the daemon's own uid.
 */
import type { PeerCred } from '../kvm/index.js';
import { type ControlCommand, MUTATING_COMMANDS } from './commands.js';

export type Authorization = { ok: true } | { ok: false; reason: string };

export function authorize(cmd: ControlCommand, peer: PeerCred | null, daemonUid: number): Authorization {
  if (!MUTATING_COMMANDS.has(cmd)) return { ok: true };
  if (peer === null) return { ok: false, reason: `${cmd} needs the peer's credentials (SO_PEERCRED failed)` };
  if (peer.uid === 0 || peer.uid === daemonUid) return { ok: true };
  return {
    ok: false,
    reason: `${cmd} changes the daemon: only root or uid ${daemonUid} may send it (peer uid ${peer.uid}, pid ${peer.pid})`,
  };
}
