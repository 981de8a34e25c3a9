/** `seawall vms`: every VM the daemon knows — connected now or seen in the event store. */
import type { Command } from 'commander';
import type { VmView } from '../../control/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { askDaemon, type ControlOptions, controlOptions, formatTime, table } from './control-io.js';

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

export function registerVms(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('vms')
      .summary('VMs seen: connected, events, poisoned pages, last action')
      .description('Every VM the daemon knows: connected now, or seen in the event store.'),
  ).action(
    act<ControlOptions>(ctx, async (opts) => {
      const vms = await askDaemon(ctx, opts, 'vms');
      ctx.io.out(opts.json ? toJson(vms) : formatVms(vms));
      return 0;
    }),
  );
}
