/**
 * The stderr form of a journal entry, used when journald is not there: one plain line, the
 * message followed by the same fields as `KEY=value` pairs, e.g.
 *
 *     policy reloaded PRIORITY=6 MESSAGE_ID=09a9… SEAWALL_POLICY_VERSION=3f2a SEAWALL_RULE="tier gold"
 *
 * Values that are empty or contain whitespace, quotes, `=`, backslashes, control, separator or
 * format characters are written as JSON strings, with every such character escaped. The message
 * is written the same way when it holds any of those but whitespace: a message naming a VM id
 * that contains a newline, an ESC or ` SEAWALL_VM=other` then cannot end the line, drive the
 * terminal, or forge a field ahead of the real ones. So every line splits back into exactly the
 * fields it was written with (a leading `"` starts a quoted message; otherwise the message ends at
 * ` PRIORITY=`). journald itself receives the exact bytes (journal.ts).
 */
import type { JournalFieldValue } from './journal-fields.js';
import { fieldValueText } from './journal-fields.js';

// Characters that make a value ambiguous or unsafe on a terminal: whitespace, quotes, `=`,
// backslash, C0/C1 controls and DEL, line/paragraph separators, format characters (bidi overrides).
const VALUE_NEEDS_QUOTES = /[\s"'\\=\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|^$/u;
// In the message, spaces are expected; anything else above forces quoting.
const MESSAGE_NEEDS_QUOTES = /["\\=\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
// What JSON.stringify leaves as is but a terminal or a log viewer would act on.
const STILL_UNSAFE = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;

/** A JSON string literal with every control, separator and format character as `\uXXXX`. */
function quoted(text: string): string {
  return JSON.stringify(text).replace(STILL_UNSAFE, (ch) => {
    const cp = ch.codePointAt(0) as number;
    // Format characters above the BMP come as one code point: write its UTF-16 pair.
    return cp > 0xffff
      ? ch
          .split('')
          .map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`)
          .join('')
      : `\\u${cp.toString(16).padStart(4, '0')}`;
  });
}

/** Quotes a value when a plain `KEY=value` would be ambiguous or unsafe. */
export function quoteValue(text: string): string {
  return VALUE_NEEDS_QUOTES.test(text) ? quoted(text) : text;
}

/** The message as written: plain, or quoted when it could forge a field or drive a terminal. */
export function quoteMessage(text: string): string {
  return MESSAGE_NEEDS_QUOTES.test(text) ? quoted(text) : text;
}

/** Formats one entry as a single line ending in `\n`; field names are validated by the caller. */
export function formatJournalLine(
  message: string,
  priority: number,
  messageId: string | undefined,
  fields: Readonly<Record<string, JournalFieldValue>> | undefined,
): string {
  let line = quoteMessage(message) + ' PRIORITY=' + priority;
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
