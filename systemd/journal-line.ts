/**
 * The stderr form of a journal entry, used when journald is not there: one plain line, the
 * message followed by the same fields as `KEY=value` pairs, e.g.
 *
 *     policy reloaded PRIORITY=6 MESSAGE_ID=09a9… SEAWALL_POLICY_VERSION=3f2a SEAWALL_RULE="tier gold"
 *
 * Values that are empty or contain whitespace, quotes, `=`, backslashes or control characters are
 * written as JSON strings, so every line splits back into the fields unambiguously and an entry
 * never spans two lines.
 */
import type { JournalFieldValue } from './journal-fields.js';
import { fieldValueText } from './journal-fields.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be quoted
const NEEDS_QUOTES = /[\s"'\\=\u0000-\u001f\u007f]|^$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the message must stay on one line
const LINE_BREAKS = /[\r\n\u0000]/g;

/** Quotes a value when a plain `KEY=value` would be ambiguous. */
export function quoteValue(text: string): string {
  return NEEDS_QUOTES.test(text) ? JSON.stringify(text) : text;
}

/** Formats one entry as a single line ending in `\n`; field names are validated by the caller. */
export function formatJournalLine(
  message: string,
  priority: number,
  messageId: string | undefined,
  fields: Readonly<Record<string, JournalFieldValue>> | undefined,
): string {
  let line = message.replace(LINE_BREAKS, ' ') + ' PRIORITY=' + priority;
  if (messageId !== undefined) line += ' MESSAGE_ID=' + messageId;
  if (fields !== undefined) {
    for (const key in fields) {
      const value = fields[key];
      if (value === undefined) continue;
      line += ' ' + key + '=' + quoteValue(fieldValueText(value));
    }
  }
  return line + '\n';
}
