/**
 * Text from the daemon or the store (VM ids, labels, rule names, error details) is written to the
 * operator's terminal. A VM id is whatever its plugin declared, so it may hold ESC sequences that
 * repaint the screen, or line breaks that forge table rows. Every such value passes through
 * `terminalSafe` before it is printed: events/'s `printable`, the one escaping the daemon's logs
 * use too (`\x1b`, `\u202e`, a doubled backslash). JSON output needs none of this:
 * JSON.stringify already escapes control characters.
 */
import { printable } from '../events/index.js';

/** `text` with every control, separator or format character replaced by a visible escape. */
export function terminalSafe(text: string): string {
  return printable(text);
}

/** Like `terminalSafe`, but keeps line breaks: for multi-line messages seawall itself composed. */
export function terminalSafeLines(text: string): string {
  return text
    .split('\n')
    .map((line) => printable(line))
    .join('\n');
}
