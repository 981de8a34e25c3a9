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
import { askDaemon, type ControlOptions, controlOptions, formatTime } from './control-io.js';

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

function outcomeText(action: string | null, o: WhyOutcome | null): string | null {
  if (action !== 'kill' && action !== 'migrate') return null;
  if (!o) return 'none recorded';
  const words = (action === 'kill' ? KILL_TEXT : MIGRATION_TEXT)[o.outcome] ?? o.outcome;
  const detail = o.detail ? ` (${terminalSafe(o.detail)})` : '';
  const when = o.own
    ? `at ${formatTime(o.updatedMs)}`
    : `folded into the ${action} requested at ${formatTime(o.timeMs)}`;
  return `${action} ${words}${detail}, ${when}`;
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
  const out = outcomeText(e.action, x.outcome);
  if (out) lines.push(`  outcome  ${out}`);
  return lines.join('\n');
}

export function formatWhy(r: WhyResult): string {
  const vm = terminalSafe(r.vm);
  const events = `${r.eventsAtLeast ? 'at least ' : ''}${r.events}`;
  // Counted up to a bound, the VM's events were searched for decisions up to it too: its newest.
  if (r.entries.length === 0) {
    if (r.events === 0) return `VM ${vm}: no stored events`;
    return r.eventsAtLeast
      ? `VM ${vm}: ${events} events; the newest ${r.events}, every one answered by the default rule — older ones were not searched (narrow --since)`
      : `VM ${vm}: ${events} events, every one answered by the default rule — nothing beyond it was decided`;
  }
  const older = r.more
    ? ' (older ones too: raise --limit or narrow --since)'
    : r.eventsAtLeast
      ? ` among its newest ${r.events} events (older ones were not searched: narrow --since)`
      : '';
  const head = `VM ${vm}: ${events} events; ${r.entries.length} decision${r.entries.length === 1 ? '' : 's'} beyond the default${older}`;
  return [head, ...r.entries.map(entryText)].join('\n\n');
}

export function registerWhy(parent: Command, ctx: CliContext): void {
  controlOptions(
    parent
      .command('why')
      .summary('why a VM was killed, migrated or acted on: rule, state, outcome')
      .description(
        'Each decision on a VM beyond the default answer: the rule, the conditions it checked with the stored events ' +
          'that made its rate window or repeated page hold, and the outcome of the kill or migration.',
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
      ctx.io.out(opts.json ? toJson(r) : formatWhy(r));
      return 0;
    }),
  );
}
