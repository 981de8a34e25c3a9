/**
 * The text a name must be to become a Prometheus label value of seawall's (metrics/label-values.ts):
 * a VM's label, a policy rule's name, a reason. Here because two folders that may not import each
 * other need the same rule: metrics/ refuses any other value, and policies/ refuses a rule name
 * that metrics/ would refuse for each of the rule's verdicts.
 */

/** Longest label value, in UTF-16 units. */
export const MAX_LABEL_TEXT_LENGTH = 128;

// C0 controls, DEL and C1 controls: valid in the exposition format once escaped, but never a
// legitimate VM id or rule name, and they make alert annotations unreadable.
const CONTROL_CHARACTER = /\p{Cc}/u;

/** Why `text` cannot be a label value, or null when it can (1–128 characters, no control character). */
export function labelTextProblem(text: string): string | null {
  if (text.length === 0) return 'is empty';
  if (text.length > MAX_LABEL_TEXT_LENGTH) {
    return `is ${text.length} characters long, more than ${MAX_LABEL_TEXT_LENGTH}`;
  }
  const control = CONTROL_CHARACTER.exec(text);
  if (control !== null) {
    const code = control[0].codePointAt(0) ?? 0;
    return `holds a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')} at ${control.index})`;
  }
  return null;
}
