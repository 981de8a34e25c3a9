/**
 * `seawall vms`: every VM the daemon knows — connected now or seen in the event store — in the
 * order of their ids. Paged as `poison` is: the first `--limit`, with a line on stderr when there
 * are more; `--all` fetches every page, one bounded request after another.
 */
import type { Command } from 'commander';
import type { VmView } from '../../control/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { askDaemon, formatTime, type PagedOptions, pagedOptions, pagedRows, table } from './control-io.js';

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
  pagedOptions(
    parent
      .command('vms')
      .summary('VMs seen: connected, events, poisoned pages, last action')
      .description(
        'Every VM the daemon knows, connected now or seen in the event store, in the order of their ids. Shows the first --limit; stderr says when there are more, and --all lists every one.',
      ),
    'VMs',
  ).action(
    act<PagedOptions>(ctx, async (opts) => {
      const { rows: vms, more } = await pagedRows<VmView>(
        (limit, last) => askDaemon(ctx, opts, 'vms', { limit, ...(last ? { after: last.vm } : {}) }),
        opts.limit,
        opts.all,
      );
      ctx.io.out(opts.json ? toJson(vms) : formatVms(vms));
      if (more) ctx.io.err(`showing the first ${vms.length} VMs; there are more: --all lists every one`);
      return 0;
    }),
  );
}
