/**
 * `seawall poison`: guest pages that hit memory errors, per VM (kept regardless of retention).
 * Paged: the first `--limit` pages, with a line on stderr when there are more; `--all` fetches
 * every page of the listing from the daemon, one bounded request after another.
 */
import type { Command } from 'commander';
import type { PoisonedPage } from '../../store/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { vmIdValue } from '../option-values.js';
import { askDaemon, formatTime, type PagedOptions, pagedOptions, pagedRows, table } from './control-io.js';

interface PoisonOptions extends PagedOptions {
  vm?: string;
}

export function formatPoison(pages: readonly PoisonedPage[]): string {
  if (pages.length === 0) return 'no poisoned pages';
  return table(
    ['VM', 'GPA', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
    pages.map((p) => [p.vm, p.gpa, String(p.count), formatTime(p.firstSeenMs), formatTime(p.lastSeenMs)]),
  );
}

export function registerPoison(parent: Command, ctx: CliContext): void {
  pagedOptions(
    parent
      .command('poison')
      .summary('poisoned guest pages: VM, GPA, count, first and last seen')
      .description(
        'Guest pages that hit memory errors, by VM and address. Shows the first --limit; stderr says when there are more, and --all lists every one.',
      )
      .option('--vm <id>', 'only this VM', vmIdValue),
    'poisoned pages',
  ).action(
    act<PoisonOptions>(ctx, async (opts) => {
      const base: Record<string, unknown> = opts.vm === undefined ? {} : { vm: opts.vm };
      const { rows: pages, more } = await pagedRows<PoisonedPage>(
        (limit, last) =>
          askDaemon(ctx, opts, 'poison', {
            ...base,
            limit,
            ...(last ? { after: { vm: last.vm, gpa: last.gpa } } : {}),
          }),
        opts.limit,
        opts.all,
      );
      ctx.io.out(opts.json ? toJson(pages) : formatPoison(pages));
      if (more)
        ctx.io.err(`showing the first ${pages.length} poisoned pages; there are more: --all lists every one`);
      return 0;
    }),
  );
}
