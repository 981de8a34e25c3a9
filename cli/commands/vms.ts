/** `seawall vms`: every VM the daemon knows — connected now or seen in the event store. */

import type { VmView } from '../../control/index.js';
import { type CliIo, toJson } from '../cli-error.js';
import { askDaemon, CONTROL_SOCKET_OPTION, formatTime, parseControlArgs, table } from './control-io.js';

export const VMS_USAGE = [
  `seawall vms ${CONTROL_SOCKET_OPTION} [--json]`,
  '                                                  VMs seen: connected, events, poisoned pages, last action',
].join('\n');

export function formatVms(vms: readonly VmView[]): string {
  if (vms.length === 0) return 'no VMs seen';
  return table(
    ['VM', 'CONNECTED', 'EVENTS', 'POISONED', 'LAST ACTION', 'LAST SEEN'],
    vms.map((v) => [
      v.vm,
      v.connected ? 'yes' : 'no',
      String(v.events),
      String(v.poisonedPages),
      v.lastAction ?? '-',
      formatTime(v.lastSeenMs),
    ]),
  );
}

export async function vmsCommand(argv: string[], io: CliIo): Promise<number> {
  const { socket, json } = parseControlArgs(argv, {}, VMS_USAGE);
  const vms = await askDaemon(socket, 'vms');
  io.out(json ? toJson(vms) : formatVms(vms));
  return 0;
}
