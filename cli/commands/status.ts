/** `seawall status`: the running daemon — version, uptime, policy, sessions, event counts, store. */
import type { Command } from 'commander';
import { STATUS_MAX_SESSIONS, type StatusResult } from '../../control/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { vmIdValue } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';
import {
  askDaemon,
  type ControlOptions,
  controlOptions,
  counted,
  formatBytes,
  formatDuration,
  formatTime,
  table,
} from './control-io.js';

/**
 * The human view of a status answer: the daemon lists at most STATUS_MAX_SESSIONS sessions, and a
 * line says how many more there are.
 */
export function formatStatus(s: StatusResult): string {
  const lines = [
    `seawall ${terminalSafe(s.version)}, pid ${s.pid}, up ${formatDuration(s.uptimeMs)} (since ${formatTime(s.startedAtMs)})`,
    `policy    ${terminalSafe(s.policy.version)} (${counted(s.policy.reloads, 'reload')}, ${s.policy.failedReloads} refused, last ${formatTime(s.policy.lastReloadAtMs)})`,
    `events    ${s.events.decided} decided, ${s.events.replays} fallback replays since start`,
  ];
  if (s.store) {
    const actions = Object.entries(s.store.byAction)
      .map(([a, n]) => `${terminalSafe(a)} ${n}`)
      .join(', ');
    lines.push(
      `store     ${terminalSafe(s.store.path)}: ${counted(s.store.events, 'event')} (${actions || 'none decided'}), ` +
        `${counted(s.store.vms, 'VM')}, ${counted(s.store.poisonedPages, 'poisoned page')}, ${formatBytes(s.store.bytes)}`,
    );
    const h = s.store.health;
    if (!h.healthy)
      lines.push(
        `          FAULTY since ${new Date(h.sinceMs ?? 0).toISOString()}: ${terminalSafe(h.error ?? '')}; ` +
          `${h.heldRows} answered events and ${h.heldUpdates} updates held, retried every second`,
      );
    // Lost for good, healthy again or not: an operator must not have to find it in the log.
    if (h.droppedRows > 0 || h.droppedUpdates > 0)
      lines.push(
        `          LOST since start: ${h.droppedRows} answered events and ${h.droppedUpdates} updates ` +
          'dropped: held past the memory bound while the store was faulty, or in write-ahead files ' +
          'removed or damaged before their commit (the journal says which)',
      );
  } else {
    lines.push('store     unavailable');
  }
  // An older daemon's answer lists every session and has no count.
  const count = s.sessionCount ?? s.sessions.length;
  const omitted = s.sessionsOmitted ?? 0;
  lines.push(`sessions  ${count}`);
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
  if (omitted > 0) lines.push(`  … and ${omitted} more sessions: seawall vms`);
  // Asked for one VM: its sessions' labels, as its plugin declared them.
  for (const x of s.sessions) {
    if (x.labels === undefined) continue;
    const pairs = Object.entries(x.labels).map(([k, v]) => `${terminalSafe(k)}=${terminalSafe(v)}`);
    lines.push(`  session ${x.id} labels: ${pairs.length > 0 ? pairs.join(', ') : 'none'}`);
  }
  return lines.join('\n');
}

interface StatusOptions extends ControlOptions {
  vm?: string;
}

export function registerStatus(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('status')
      .summary('the running daemon: sessions, policy, counts, uptime')
      .description(
        `The running daemon: version, uptime, the policy in force, plugin sessions (the first ${STATUS_MAX_SESSIONS} opened, and how many more: seawall vms lists every connected VM), event counts and the store. With --vm, that VM's session alone, with its labels.`,
      )
      .option('--vm <id>', "only this VM's session, with the labels its plugin declared", vmIdValue),
  ).action(
    act<StatusOptions>(ctx, async (opts) => {
      const s = await askDaemon(ctx, opts, 'status', opts.vm === undefined ? {} : { vm: opts.vm });
      ctx.io.out(opts.json ? toJson(s) : formatStatus(s));
      return 0;
    }),
  );
}
