/**
 * Text a peer chose (VM ids, labels, rule names read back from the store) made safe to show on a
 * terminal or in one line of a table: every character that could move the cursor, end the line,
 * start an escape sequence or reorder what follows is written as a visible escape instead.
 *
 * Escaped: C0 and C1 controls and DEL (`\x1b`, `\n`, `\x9b` …), the Unicode line and paragraph
 * separators, and format characters such as the bidirectional overrides (U+202E) — as `\xNN`, `\uNNNN`
 * or `\u{NNNNN}`. A backslash is doubled, so the escaped text maps back to exactly one original and two
 * different ids never look alike. Everything else, including other non-ASCII text, is kept.
 */

// \p{Cc}: C0, DEL, C1. \p{Cf}: format characters (bidi overrides, zero-width joiners). \p{Zl}\p{Zp}:
// U+2028/U+2029, which some terminals and most log viewers treat as line breaks.
const UNSAFE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
const UNSAFE_TEST = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

function escapeChar(ch: string): string {
  if (ch === '\\') return '\\\\';
  const cp = ch.codePointAt(0) as number;
  if (cp <= 0xff) return `\\x${cp.toString(16).padStart(2, '0')}`;
  return cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** `text` with every control, separator and format character escaped (see the module comment). */
export function printable(text: string): string {
  // Most text has nothing to escape: test once, allocate nothing.
  return UNSAFE_TEST.test(text) ? text.replace(UNSAFE, escapeChar) : text;
}
