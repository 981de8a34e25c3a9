/**
 * `seawall poison`: guest pages that hit memory errors, per VM (kept regardless of retention).
 * Paged: the first `--limit` pages, with a line on stderr when there are more; `--all` fetches
 * every page of the listing from the daemon, one bounded request after another.
 */
import type { Command } from 'commander';
import { MAX_QUERY_LIMIT, type PoisonedPage } from '../../store/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { intValue, vmIdValue } from '../option-values.js';
import { askDaemon, type ControlOptions, controlOptions, formatTime, table } from './control-io.js';

interface PoisonOptions extends ControlOptions {
  vm?: string;
  limit: number;
  all: boolean;
}

export function formatPoison(pages: readonly PoisonedPage[]): string {
  if (pages.length === 0) return 'no poisoned pages';
  return table(
    ['VM', 'GPA', 'COUNT', 'FIRST SEEN', 'LAST SEEN'],
    pages.map((p) => [p.vm, p.gpa, String(p.count), formatTime(p.firstSeenMs), formatTime(p.lastSeenMs)]),
  );
}

export function registerPoison(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('poison')
      .summary('poisoned guest pages: VM, GPA, count, first and last seen')
      .description(
        'Guest pages that hit memory errors, by VM and address. Shows the first --limit; stderr says when there are more, and --all lists every one.',
      )
      .option('--vm <id>', 'only this VM', vmIdValue)
      .option('--limit <n>', `at most N pages, 1 to ${MAX_QUERY_LIMIT}`, intValue(1, MAX_QUERY_LIMIT), 1000)
      .option('--all', 'every poisoned page, however many (fetched in pages)', false),
  ).action(
    act<PoisonOptions>(ctx, async (opts) => {
      const base: Record<string, unknown> = opts.vm === undefined ? {} : { vm: opts.vm };
      const pageSize = opts.all ? MAX_QUERY_LIMIT : opts.limit;
      const pages: PoisonedPage[] = [];
      let more = false;
      for (;;) {
        const last = pages[pages.length - 1];
        const batch = await askDaemon(ctx, opts, 'poison', {
          ...base,
          limit: pageSize,
          ...(last ? { after: { vm: last.vm, gpa: last.gpa } } : {}),
        });
        pages.push(...batch);
        if (batch.length < pageSize) break;
        if (!opts.all) {
          const tail = pages[pages.length - 1] as PoisonedPage;
          const next = await askDaemon(ctx, opts, 'poison', {
            ...base,
            limit: 1,
            after: { vm: tail.vm, gpa: tail.gpa },
          });
          more = next.length > 0;
          break;
        }
      }
      ctx.io.out(opts.json ? toJson(pages) : formatPoison(pages));
      if (more)
        ctx.io.err(`showing the first ${pages.length} poisoned pages; there are more: --all lists every one`);
      return 0;
    }),
  );
}
