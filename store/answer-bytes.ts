/**
 * The bound on an answer's bytes. A read of events is bounded in rows (MAX_QUERY_LIMIT,
 * FOLLOW_MAX_LIMIT), but every row repeats its VM's labels — up to 32 of 63 + 255 bytes, and a
 * control byte of a label escapes to six characters of JSON — so ten thousand rows of one VM
 * made answers larger than the client takes (control/client.ts) and costly to copy. Each answer
 * of `events` and `follow` therefore also stops once its rows' JSON reaches ANSWER_MAX_BYTES, and
 * says where it stopped (the oldest row given, or `through`), so that paging and following go on
 * from there. The first row is always given: a row's size is bounded by the protocol's limits on
 * VM ids and labels, far below the budget, so an answer never holds zero rows of a VM whose rows
 * are large. Measured where the rows are encoded: on the reader thread.
 */
import { jsonText } from './encoded-json.js';

/** Most bytes of rows' JSON one answer holds (its first row is given whatever its size). */
export const ANSWER_MAX_BYTES = 8 * 1024 * 1024;

/** Counts the bytes of the rows an answer gives, as they will be encoded (jsonText, UTF-8). */
export class AnswerBytes {
  #left: number;
  #rows = 0;

  constructor(max: number = ANSWER_MAX_BYTES) {
    // The list's brackets, less the comma its last row does not need: `[a,b]` is a + 1 + b + 1 + 1.
    this.#left = max - 1;
  }

  /**
   * Whether `row` is given too: the first always, a later one while the answer stays within its
   * bytes. Once one does not fit, the answer ends there (the caller stops asking).
   */
  fits(row: unknown): boolean {
    // The row's JSON and the comma that separates it from the next.
    const n = Buffer.byteLength(jsonText(row)) + 1;
    if (this.#rows > 0 && n > this.#left) return false;
    this.#left -= n;
    this.#rows++;
    return true;
  }
}
