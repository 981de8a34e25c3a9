/** A duration on the command line, in the one grammar policies use (`500ms`, `10m`, `5m30s`). */
import { parseDuration } from '../policies/index.js';
import { CliError } from './cli-error.js';

/** Milliseconds for `text`; a usage error naming `what` (the option) when it does not parse. */
export function durationArg(text: string, what: string): number {
  const ms = parseDuration(text);
  if (ms === null) {
    throw new CliError('usage', `${what}: '${text}' is not a duration like 500ms, 10s, 5m, 1h, 2d or 5m30s`);
  }
  return ms;
}
