/** Durations written by people: `250ms`, `10s`, `5m`, `1h`, `2d` → milliseconds. */
import { CliError } from './cli-error.js';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new CliError('usage', `${what}: '${text}' is not a duration like 500ms, 10s, 5m, 1h or 2d`);
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
}
