/**
 * The write-ahead file's lines for what is written after the rows (store/updates.ts `StoreUpdate`):
 * APPLIED results, and session, action and policy rows. Each is written with the next rows, or at
 * the next hand-over when none follow, so one handed to a writer thread that is behind, or kept for
 * a commit that waits on a lock, survives a kill -9 with its file; restored only at the next start
 * (store/segments.ts `recoverPending`): while the daemon runs, each is committed from memory with
 * its segment. Recovered after its commit as well, none changes anything: an APPLIED result, a
 * session's open and an action's start never overwrite, and a session's close and an action's end
 * carry the whole row. Neither kind of line is a row to `decodeLine`, so a seawall that knows
 * none of them skips them; a line of the wrong shape is skipped as a torn one is.
 */
import type { ActionUpdate, AppliedUpdate, PolicyUpdate, SessionUpdate, StoreUpdate } from './updates.js';

/** An update read back from a file, with the boot whose store wrote it. */
export interface WrittenAhead {
  bootId: string;
  update: StoreUpdate;
}

/** How a result line starts (`encodeResult`): what tells it from a row without parsing it. */
const RESULT_PREFIX = '["applied",';
/** How a session, action or policy line starts (`encodeUpdate`). */
const UPDATE_PREFIX = '["update",';

/**
 * The encoder of a boot's APPLIED results: `["applied", boot id, session id, order, result, ms,
 * fallback action, row id]` — one per event in a storm, so it is built without an array. A seawall
 * before schema 9 wrote no row id: such a result finds its row by its boot, session and order.
 */
export function encodeResult(bootId: string): (u: AppliedUpdate) => string {
  // The same text as JSON.stringify(['applied', bootId, ...u]): the values are integers and null,
  // and the boot id is quoted once.
  const head = `${RESULT_PREFIX}${JSON.stringify(bootId)},`;
  return (u) => `${head}${u[0]},${u[1]},${u[2]},${u[3]},${u[4]},${u[5]}]`;
}

/** The encoder of a boot's session, action and policy rows: `["update", boot id, ...the update]`. */
export function encodeUpdate(bootId: string): (u: Exclude<StoreUpdate, AppliedUpdate>) => string {
  const head = `${UPDATE_PREFIX}${JSON.stringify(bootId)},`;
  // The update's values are strings, numbers and null: the plain stringify is exact.
  return (u) => `${head}${JSON.stringify(u).slice(1)}`;
}

/** Whether a line is one of these (told apart from a row without parsing it). */
export const isUpdateLine = (line: string): boolean =>
  line.startsWith(RESULT_PREFIX) || line.startsWith(UPDATE_PREFIX);

const int = (x: unknown): x is number => Number.isSafeInteger(x);
const text = (x: unknown): x is string => typeof x === 'string';
const intOrNull = (x: unknown) => x === null || int(x);
const textOrNull = (x: unknown) => x === null || text(x);

/** A line back into its boot id and update; null for any other line, or one of the wrong shape. */
export function decodeUpdate(line: string): WrittenAhead | null {
  if (!isUpdateLine(line)) return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || !text(v[1])) return null;
  const update = v[0] === 'applied' ? appliedOf(v.slice(2)) : updateOf(v.slice(2));
  return update === null ? null : { bootId: v[1], update };
}

function appliedOf(v: unknown[]): AppliedUpdate | null {
  // Written before schema 9 without the row's id.
  if (v.length === 5) v.push(null);
  const [session, ord, result, ms, fallback, id] = v;
  if (v.length !== 6 || !int(session) || !int(ord) || !int(result) || !int(ms)) return null;
  return intOrNull(fallback) && intOrNull(id) ? (v as AppliedUpdate) : null;
}

/** Checks every value against the type `StoreUpdate` gives it. */
function updateOf(v: unknown[]): Exclude<StoreUpdate, AppliedUpdate> | null {
  const ints = (...i: number[]) => i.every((k) => int(v[k]));
  const texts = (...i: number[]) => i.every((k) => text(v[k]));
  switch (v[0]) {
    case 'open':
      return v.length === 9 && ints(1, 4, 5, 6, 7, 8) && texts(2, 3) ? (v as SessionUpdate) : null;
    case 'close':
      return v.length === 12 && ints(1, 4, 5, 6, 7, 8, 9) && texts(2, 3, 10) && textOrNull(v[11])
        ? (v as SessionUpdate)
        : null;
    case 'action':
    case 'action-end':
      return v.length === 11 &&
        ints(1, 2, 8) &&
        texts(3, 4, 6) &&
        textOrNull(v[5]) &&
        textOrNull(v[7]) &&
        intOrNull(v[9]) &&
        intOrNull(v[10])
        ? (v as ActionUpdate)
        : null;
    case 'policy':
      return v.length === 5 && texts(1, 2, 3) && ints(4) ? (v as PolicyUpdate) : null;
    default:
      return null;
  }
}
