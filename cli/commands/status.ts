/** `seawall status`: the running daemon — version, uptime, policy, sessions, event counts, store. */

import type { StatusResult } from '../../control/index.js';
import { printable } from '../../events/index.js';
import { type CliIo, toJson } from '../cli-error.js';
import {
  askDaemon,
  CONTROL_SOCKET_OPTION,
  formatBytes,
  formatDuration,
  formatTime,
  parseControlArgs,
  table,
} from './control-io.js';

export const STATUS_USAGE = [
  `seawall status ${CONTROL_SOCKET_OPTION} [--json]`,
  '                                                  the running daemon: sessions, VMs, policy, counts, uptime',
].join('\n');

/** The human view of a status answer. */
export function formatStatus(s: StatusResult): string {
  const lines = [
    `seawall ${s.version}, pid ${s.pid}, up ${formatDuration(s.uptimeMs)} (since ${formatTime(s.startedAtMs)})`,
    `policy    ${s.policy.version} (${s.policy.reloads} reloads, ${s.policy.failedReloads} refused, last ${formatTime(s.policy.lastReloadAtMs)})`,
    `events    ${s.events.decided} decided, ${s.events.replays} fallback replays since start`,
  ];
  if (s.store) {
    const actions = Object.entries(s.store.byAction)
      .map(([a, n]) => `${a} ${n}`)
      .join(', ');
    lines.push(
      `store     ${s.store.path}: ${s.store.events} events (${actions || 'none decided'}), ` +
        `${s.store.vms} VMs, ${s.store.poisonedPages} poisoned pages, ${formatBytes(s.store.bytes)}`,
    );
    const h = s.store.health;
    if (!h.healthy)
      lines.push(
        `          FAULTY since ${new Date(h.sinceMs ?? 0).toISOString()}: ${printable(h.error ?? '')}; ` +
          `${h.heldRows} answered events held in memory, retried every second`,
      );
  } else {
    lines.push('store     unavailable');
  }
  lines.push(`sessions  ${s.sessions.length}`);
  if (s.sessions.length > 0) {
    const rows = s.sessions.map((x) => [
      x.vm,
      x.id,
      String(x.vmmPid),
      String(x.vcpus),
      x.abi,
      formatTime(x.openedAtMs),
    ]);
    lines.push(
      table(['VM', 'SESSION', 'VMM PID', 'VCPUS', 'ABI', 'SINCE'], rows)
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  return lines.join('\n');
}

export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  const { socket, json } = parseControlArgs(argv, {}, STATUS_USAGE);
  const s = await askDaemon(socket, 'status');
  io.out(json ? toJson(s) : formatStatus(s));
  return 0;
}
