/** `seawall events`: the stored events, newest last — "why was this VM killed?". */

import type { StoredEvent } from '../../store/index.js';
import { CliError, type CliIo, toJson } from '../cli-error.js';
import { durationArg } from '../duration-arg.js';
import { askDaemon, CONTROL_SOCKET_OPTION, formatTime, parseControlArgs, table } from './control-io.js';

export const EVENTS_USAGE = [
  `seawall events [--vm ID] [--since 1h|2024-05-01T12:00Z] [--limit N] ${CONTROL_SOCKET_OPTION} [--json]`,
  '                                                  stored events (the newest N, oldest first; default 100)',
].join('\n');

const MAX_LIMIT = 10_000;

/** `--since`: a duration back from now (`90s`, `1h`, `7d`) or an ISO 8601 time. */
export function parseSince(text: string, nowMs: number): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isFinite(t)) throw new CliError('usage', `--since: '${text}' is not a valid ISO 8601 time`);
    return t;
  }
  try {
    return Math.max(0, nowMs - durationArg(text, '--since'));
  } catch {
    throw new CliError(
      'usage',
      `--since: '${text}' is neither a duration (500ms, 10s, 5m, 1h, 2d) nor an ISO time (2024-05-01T12:00Z)`,
    );
  }
}

export function parseLimit(text: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_LIMIT)
    throw new CliError('usage', `--limit: '${text}' is not a whole number from 1 to ${MAX_LIMIT}`);
  return n;
}

function outcome(e: StoredEvent): string {
  if (e.replay) return `fallback (action ${e.fallbackAction ?? '?'})`;
  const parts = [e.action ?? '-'];
  if (e.downgrades.length > 0) parts.push('downgraded');
  if (e.applied !== null) parts.push(e.applied === 0 ? 'applied' : `apply failed ${e.applied}`);
  return parts.join(', ');
}

export function formatEvents(events: readonly StoredEvent[]): string {
  if (events.length === 0) return 'no events';
  return table(
    ['TIME', 'VM', 'VCPU', 'KIND', 'SEVERITY', 'ESR', 'GPA', 'RULE', 'OUTCOME'],
    events.map((e) => [
      formatTime(e.timeMs),
      e.vm,
      e.vcpu === null ? '-' : String(e.vcpu),
      e.kind,
      e.severity,
      e.esr === null ? '-' : `0x${BigInt(e.esr).toString(16)}`,
      e.gpa === null ? '-' : `0x${BigInt(e.gpa).toString(16)}`,
      e.rule ?? '-',
      outcome(e),
    ]),
  );
}

export async function eventsCommand(argv: string[], io: CliIo, nowMs: number = Date.now()): Promise<number> {
  const { socket, json, values } = parseControlArgs(
    argv,
    { vm: { type: 'string' }, since: { type: 'string' }, limit: { type: 'string' } },
    EVENTS_USAGE,
  );
  const args: Record<string, unknown> = {};
  if (typeof values.vm === 'string') {
    if (values.vm === '') throw new CliError('usage', '--vm needs a VM id');
    args.vm = values.vm;
  }
  if (typeof values.since === 'string') args.sinceMs = parseSince(values.since, nowMs);
  if (typeof values.limit === 'string') args.limit = parseLimit(values.limit);
  const events = await askDaemon(socket, 'events', args);
  io.out(json ? toJson(events) : formatEvents(events));
  return 0;
}
