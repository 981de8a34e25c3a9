/**
 * `seawall why VM`: "why was this VM killed?" — each decision on the VM beyond the default answer,
 * the rule that made it and the conditions it checked, the stored events that made its state
 * conditions hold (a rate window, a repeated page), and the outcome of the kill or migration.
 */
import type { Command } from 'commander';
import type { WhyCondition, WhyEntry, WhyOutcome, WhyResult } from '../../control/index.js';
import type { WindowEvent } from '../../store/index.js';
import { toJson } from '../cli-error.js';
import { act, type CliContext } from '../context.js';
import { intValue, sinceValue, vmIdValue } from '../option-values.js';
import { terminalSafe } from '../terminal-text.js';
import { askDaemon, type ControlOptions, controlOptions, counted, formatTime } from './control-io.js';

interface WhyOptions extends ControlOptions {
  since?: number;
  limit: number;
}

const hex = (v: string | null) => (v === null ? 'GPA unknown' : `0x${BigInt(v).toString(16)}`);

function evidenceLine(e: WindowEvent, self: number): string {
  const where = e.gpa === null ? 'GPA unknown' : `GPA ${hex(e.gpa)}`;
  return `${formatTime(e.timeMs)}  ${terminalSafe(e.vm)}  ${e.kind} ${e.severity}  ${where}${e.id === self ? '  ← this event' : ''}`;
}

function conditionLines(c: WhyCondition, self: number): string[] {
  const head = `${terminalSafe(c.matcher)}: ${terminalSafe(c.expected)}`;
  if (!c.evidence) return [head];
  const { count, atLeast, events } = c.evidence;
  const n = `${atLeast ? 'at least ' : ''}${count}`;
  const what =
    c.matcher === 'rate'
      ? `${n} event${count === 1 ? '' : 's'} in the window, this one included`
      : `${n} earlier error${count === 1 ? '' : 's'} on this page`;
  const shown = events.length < count ? ` (the newest ${events.length} shown)` : '';
  return [`${head} — ${what}${shown}:`, ...events.map((e) => `    ${evidenceLine(e, self)}`)];
}

const KILL_TEXT: Readonly<Record<string, string>> = {
  requested: 'requested; the grace is still running',
  exited: 'the VMM exited within the grace (enforcement not needed)',
  sigkilled: 'enforced: SIGKILL at the end of the grace',
  failed: 'FAILED — the VM may still run',
};
const MIGRATION_TEXT: Readonly<Record<string, string>> = {
  requested: 'requested; the hook has not answered yet',
  accepted: 'accepted by the orchestrator',
  refused: 'refused by the orchestrator (not asked again for this session and policy)',
  failed: 'failed',
  timed_out: 'timed out',
  dropped: 'dropped: the hook queue was full, the hook never ran',
};
/** The migration outcomes after which onFailure runs, as the kill that followed names them. */
const MIGRATION_END: Readonly<Record<string, string>> = {
  refused: 'refused',
  failed: 'failed',
  timed_out: 'timed out',
};

/** The count a kill's or migration's detail gives of the requests folded into it (daemon/action-reporting.ts). */
const FOLDED_COUNT = /(?:^|; )\d+ later [a-z ]+? folded in$/;

function outcomeText(action: string | null, o: WhyOutcome | null): string[] {
  if (action !== 'kill' && action !== 'migrate') return [];
  if (!o) return ['none recorded'];
  // A decision folded in is counted in the detail of the action it joined: said once, on that one's entry.
  const detail = o.own ? o.detail : (o.detail?.replace(FOLDED_COUNT, '') ?? null);
  const when = o.own
    ? `at ${formatTime(o.updatedMs)}`
    : `folded into the ${action} requested at ${formatTime(o.timeMs)}`;
  const lines = [`${action} ${actionWords(action, o.outcome, detail)}, ${when}`];
  if (o.onFailureKill) {
    const k = o.onFailureKill;
    lines.push(
      `then: kill (the rule's onFailure, the migration ${MIGRATION_END[o.outcome] ?? terminalSafe(o.outcome)}) ` +
        `requested at ${formatTime(k.timeMs)}: ${actionWords('kill', k.outcome, k.detail)}` +
        `${k.outcome === 'requested' ? '' : `, at ${formatTime(k.updatedMs)}`}`,
    );
  }
  return lines;
}

function actionWords(action: 'kill' | 'migrate', outcome: string, detail: string | null): string {
  const words = (action === 'kill' ? KILL_TEXT : MIGRATION_TEXT)[outcome] ?? terminalSafe(outcome);
  return `${words}${detail ? ` (${terminalSafe(detail)})` : ''}`;
}

function entryText(x: WhyEntry): string {
  const e = x.event;
  const lines = [
    `${formatTime(e.timeMs)}  ${terminalSafe(x.decision)}`,
    `  rule     ${terminalSafe(e.rule ?? '-')} (policy ${terminalSafe(e.policyVersion ?? '?')})`,
    `  event    ${e.kind} ${e.severity}, vCPU ${e.vcpu ?? '-'}, ${e.gpa === null ? 'GPA unknown' : `GPA ${hex(e.gpa)}`}${e.esr ? `, ESR 0x${BigInt(e.esr).toString(16)}` : ''}`,
  ];
  if (x.conditions === null) {
    lines.push('  because  (that policy version is no longer known: its rule cannot be shown)');
  } else if (x.conditions.length === 0) {
    lines.push('  because  the rule matches every event');
  } else {
    const [first, ...rest] = x.conditions.flatMap((c) => conditionLines(c, e.id));
    lines.push(`  because  ${first}`, ...rest.map((l) => `           ${l}`));
  }
  const [out, ...then] = outcomeText(e.action, x.outcome);
  if (out) lines.push(`  outcome  ${out}`, ...then.map((l) => `           ${l}`));
  return lines.join('\n');
}

/** The counted events the plugin's fallback answered: replays (no rule decided them), late verdicts. */
function fallbackParts(r: WhyResult): { replays: string | null; late: string | null } {
  return {
    replays:
      r.replays > 0 ? `${counted(r.replays, 'replay', 'replays')} answered by the plugin's fallback` : null,
    late:
      r.superseded > 0
        ? `${counted(r.superseded, 'verdict', 'verdicts')} too late: the plugin's fallback answered first`
        : null,
  };
}

/** No decision beyond the default among the `r.events` counted: what answered them. */
function defaultsOnly(r: WhyResult): string {
  const { replays, late } = fallbackParts(r);
  if (replays === null)
    return late === null
      ? 'every one answered by the default rule'
      : `every one decided by the default rule (${late})`;
  const decided = r.events - r.replays;
  if (decided === 0) return `every one a replay answered by the plugin's fallback (no rule decided them)`;
  const them =
    r.superseded > 0 ? ` (${r.superseded} of them too late: the plugin's fallback answered first)` : '';
  return `${decided} decided by the default rule${them}, ${replays} (no rule decided them)`;
}

/** `sinceMs`: the --since asked for, when it was. */
export function formatWhy(r: WhyResult, sinceMs?: number): string {
  const vm = terminalSafe(r.vm);
  const since = sinceMs === undefined ? '' : ` since ${formatTime(sinceMs)}`;
  const events = `${r.eventsAtLeast ? 'at least ' : ''}${counted(r.events, 'event', 'events')}${since}`;
  if (r.events === 0) {
    if (r.newestMs === null) return `VM ${vm}: no stored events (the store holds none of this VM)`;
    return `VM ${vm}: no stored events${since} (its newest is of ${formatTime(r.newestMs)})`;
  }
  // Counted up to a bound, the VM's events were searched for decisions up to it too: its newest.
  if (r.entries.length === 0) {
    return r.eventsAtLeast
      ? `VM ${vm}: ${events}; the newest ${r.events}, ${defaultsOnly(r)} — older ones were not searched (narrow --since)`
      : `VM ${vm}: ${events}, ${defaultsOnly(r)} — nothing beyond the default was decided`;
  }
  const { replays, late } = fallbackParts(r);
  const fallbacks =
    replays === null && late === null ? '' : ` (${[replays, late].filter(Boolean).join(', ')})`;
  const older = r.more
    ? ' (older ones too: raise --limit or narrow --since)'
    : r.eventsAtLeast
      ? ` among its newest ${r.events} events (older ones were not searched: narrow --since)`
      : '';
  const head = `VM ${vm}: ${events}${fallbacks}; ${counted(r.entries.length, 'decision', 'decisions')} beyond the default${older}`;
  return [head, ...r.entries.map(entryText)].join('\n\n');
}

export function registerWhy(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('why')
      .summary('why a VM was killed, migrated or acted on: rule, state, outcome')
      .description(
        'Each decision on a VM beyond the default answer: the rule, the conditions it checked with the stored events ' +
          'that made its rate window or repeated page hold, and the outcome of the kill or migration (and of the ' +
          "kill a refused migration's onFailure started).",
      )
      .argument('<vm>', 'the VM id', vmIdValue)
      .option(
        '--since <when>',
        'a duration back from now (90s, 1h, 7d) or an ISO 8601 time',
        sinceValue(ctx.now),
      )
      .option('--limit <n>', 'the newest N decisions, 1 to 100', intValue(1, 100), 20),
  ).action(
    act<WhyOptions, [string]>(ctx, async (opts, vm) => {
      const args: Record<string, unknown> = { vm, limit: opts.limit };
      if (opts.since !== undefined) args.sinceMs = opts.since;
      const r = await askDaemon(ctx, opts, 'why', args);
      ctx.io.out(opts.json ? toJson(r) : formatWhy(r, opts.since));
      return 0;
    }),
  );
}
