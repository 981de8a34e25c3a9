/**
 * `seawall events`: the stored events, newest last. When more events match than are shown, a line
 * on stderr says so (the JSON on stdout stays a plain list). With `--follow`, then the events
 * stored from then on (cli/commands/events-follow.ts); its JSON is one event per line.
 */
import type { Command } from 'commander';
import { actionName } from '../../protocol/index.js';
import { MAX_QUERY_LIMIT, type StoredEvent } from '../../store/index.js';
import { toJson, toJsonLine } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { intValue, sinceValue, vmIdValue } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';
import {
  askDaemon,
  type ControlOptions,
  controlOptions,
  counted,
  formatTime,
  GrowingTable,
} from './control-io.js';
import { type FollowFilter, follow, followStart } from './events-follow.js';

interface EventsOptions extends ControlOptions {
  vm?: string;
  since?: number;
  limit: number;
  follow: boolean;
}

/** A plugin's fallback action (a protocol ACTION code) by its name: inject, kill, resume. */
function fallbackName(code: number | null): string {
  return code === null ? '?' : actionName(code);
}

function outcome(e: StoredEvent): string {
  if (e.replay) return `fallback ${fallbackName(e.fallbackAction)}`;
  const parts = [e.action ?? '-'];
  if (e.downgrades.length > 0) parts.push('downgraded');
  // A dry-run policy's own decision, which the guest did not get.
  if (e.wouldHave !== null) parts.push(`dry run, would have: ${e.wouldHave.detail}`);
  // The verdict came after the plugin's own fallback: the guest got the fallback (1.1 APPLIED).
  if (e.fallbackAction !== null) parts.push(`superseded by fallback ${fallbackName(e.fallbackAction)}`);
  if (e.applied !== null) parts.push(e.applied === 0 ? 'applied' : `apply failed ${e.applied}`);
  return parts.join(', ');
}

const HEADERS = ['TIME', 'VM', 'VCPU', 'KIND', 'SEVERITY', 'ESR', 'GPA', 'RULE', 'OUTCOME'];

function cells(e: StoredEvent): string[] {
  return [
    formatTime(e.timeMs),
    e.vm,
    e.vcpu === null ? '-' : String(e.vcpu),
    e.kind,
    e.severity,
    e.esr === null ? '-' : `0x${BigInt(e.esr).toString(16)}`,
    e.gpa === null ? '-' : `0x${BigInt(e.gpa).toString(16)}`,
    e.rule ?? '-',
    outcome(e),
  ];
}

export function formatEvents(events: readonly StoredEvent[]): string {
  if (events.length === 0) return 'no events';
  return new GrowingTable(HEADERS).lines(events.map(cells), true);
}

/**
 * The newest `query.limit` events, oldest first. The daemon ends an answer early when its rows'
 * JSON reaches its bound in bytes (store/answer-bytes.ts; a VM's labels repeat in every row): a
 * short answer is then followed by the page before its oldest row, until the limit is reached or
 * a page comes back empty.
 */
async function newest(
  ctx: CliContext,
  opts: ControlOptions,
  query: FollowFilter & { limit: number },
): Promise<StoredEvent[]> {
  const pages: StoredEvent[][] = [];
  let got = 0;
  let oldest: StoredEvent | undefined;
  while (got < query.limit) {
    const before = oldest === undefined ? {} : { before: { timeMs: oldest.timeMs, id: oldest.id } };
    const page = await askDaemon(ctx, opts, 'events', { ...query, limit: query.limit - got, ...before });
    if (page.length === 0) break;
    pages.unshift(page);
    got += page.length;
    oldest = page[0];
  }
  return pages.flat();
}

export function registerEvents(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('events')
      .summary('stored events: the newest N, oldest first')
      .description(
        'The stored events, the newest N (default 100) oldest first. When more match, stderr says how to see them.',
      )
      .option('--vm <id>', 'only this VM', vmIdValue)
      .option(
        '--since <when>',
        'a duration back from now (90s, 1h, 7d) or an ISO 8601 time',
        sinceValue(ctx.now),
      )
      .option(
        '--limit <n>',
        `the newest N events, 1 to ${MAX_QUERY_LIMIT}`,
        intValue(1, MAX_QUERY_LIMIT),
        100,
      )
      .option(
        '-f, --follow',
        'then the events stored from now on, as they are stored, until interrupted (--json: one event per line)',
        false,
      ),
  ).action(
    act<EventsOptions>(ctx, async (opts) => {
      const filter: FollowFilter = {};
      if (opts.vm !== undefined) filter.vm = opts.vm;
      if (opts.since !== undefined) filter.sinceMs = opts.since;
      const query = { ...filter, limit: opts.limit };
      // Taken before the listing: an event stored between the two is followed, not lost.
      const start = opts.follow ? await followStart(ctx, opts, filter) : null;
      const events = await newest(ctx, opts, query);
      // Followed, the JSON is one event per line, the listing's too; the table keeps its columns.
      const rows = new GrowingTable(HEADERS);
      const followed = (batch: readonly StoredEvent[], header = false) => {
        if (opts.json) for (const e of batch) ctx.io.out(toJsonLine(e));
        else ctx.io.out(rows.lines(batch.map(cells), header));
      };
      if (!start) ctx.io.out(opts.json ? toJson(events) : formatEvents(events));
      else followed(events, true);
      const oldest = events[0];
      if (events.length === opts.limit && oldest) {
        const more = await askDaemon(ctx, opts, 'events', {
          ...query,
          limit: 1,
          before: { timeMs: oldest.timeMs, id: oldest.id },
        });
        if (more.length > 0) {
          ctx.io.err(
            `showing the newest ${counted(events.length, 'event')}${opts.vm ? ` of ${terminalSafe(opts.vm)}` : ''}; older ones match too ` +
              `(the oldest shown: ${formatTime(oldest.timeMs)}): raise --limit (at most ${MAX_QUERY_LIMIT}) or narrow --since`,
          );
        }
      }
      if (!start) return 0;
      return follow(ctx, opts, filter, start, events, followed);
    }),
  );
}
