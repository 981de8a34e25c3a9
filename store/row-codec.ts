/**
 * The write-ahead files' binary rows. The verdict path writes every stored event once more than
 * it answers it, and as JSON that was its largest single cost in the store (stringifying 30
 * values, a session's labels escaped into every line, then encoding the text to UTF-8); the
 * writer thread paid `JSON.parse` for it again. A row here is its 30 values in column order, each
 * a tag and its bytes, and a string a row repeats from an earlier row of the same file — the boot
 * id, the VM, its labels, the kind, the rule — is written once and referred to by number after.
 *
 * A record: the byte 0xB1 (never the first byte of a JSON line, or of UTF-8 text), its body's
 * length (u32 LE), then per column one tag: null; a number (f64 LE, exact for every JS number); a
 * string (u32 LE byte length, UTF-8); a reference to a string defined earlier in the file (u16 LE);
 * or a definition (u16 LE number, then the string) that is used at once. A definition may reuse a
 * number: the last one before a reference is the one it means, so an encoder that lost track of
 * what reached the file (a write cut off) starts numbering again. Each file is read from its start.
 */
import { EVENT_COLUMNS } from './rows.js';

export const RECORD_MARK = 0xb1;
const NULL = 0;
const NUMBER = 1;
const STRING = 2;
const REF = 3;
const DEFINE = 4;
/** A string (or a definition) whose bytes are all ASCII: read back without UTF-8 decoding. */
const ASCII = 8;

/** Strings numbered per file; past it, strings are written in full. */
export const MAX_DEFINED = 4096;
/** Strings longer than this (UTF-16 units) are never numbered, and the table stays small. */
const MAX_DEFINED_LENGTH = 1024;
/** The columns whose strings repeat from row to row: the others (hex addresses, the time) vary. */
const REPEATING = new Set<string>([
  'boot_id',
  'vm',
  'labels',
  'kind',
  'fsc_class',
  'abort',
  'severity',
  'sigbus_code',
  'action',
  'rule',
  'policy_version',
  'downgrade',
  'non_conforming',
  'kernel_mismatch',
]);
const repeats: readonly boolean[] = EVENT_COLUMNS.map((c) => REPEATING.has(c));

const HEADER = 5;
/** Strings up to this length are tried as ASCII byte by byte. */
const SHORT = 64;

/** Copies `s` to `buf` at `at` if every unit is ASCII; returns its length, or -1 (bytes past `at` then undefined). */
function ascii(buf: Buffer, s: string, at: number): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    buf[at + i] = c;
  }
  return s.length;
}

/**
 * Encodes rows for one write-ahead file at a time: `reset` whenever the file it appends to is a
 * new one, or when bytes it returned did not all reach the file.
 */
export class RowEncoder {
  #defined = new Map<string, number>();
  /** Per column, the string last referred to and its number: most rows repeat their neighbour's. */
  #last: (string | null)[] = EVENT_COLUMNS.map(() => null);
  #lastId: number[] = EVENT_COLUMNS.map(() => 0);
  #buf = Buffer.allocUnsafe(64 * 1024);

  reset(): void {
    this.#defined.clear();
    this.#last.fill(null);
  }

  /**
   * The rows' records, in a buffer the next call reuses: write it before encoding again. If it
   * does not reach the file whole, `reset` before the next call.
   */
  encode(rows: readonly { readonly values: readonly unknown[] }[]): Buffer {
    let at = 0;
    for (const { values } of rows) {
      const start = at;
      this.#room(at, HEADER);
      at += HEADER;
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v === null || v === undefined) {
          this.#room(at, 1);
          this.#buf[at++] = NULL;
        } else if (typeof v === 'number') {
          this.#room(at, 9);
          this.#buf[at] = NUMBER;
          this.#buf.writeDoubleLE(v, at + 1);
          at += 9;
        } else at = this.#string(String(v), at, i);
      }
      this.#buf[start] = RECORD_MARK;
      this.#buf.writeUInt32LE(at - start - HEADER, start + 1);
    }
    return this.#buf.subarray(0, at);
  }

  #string(s: string, at: number, column: number): number {
    const repeating = repeats[column] === true;
    if (repeating) {
      const n = this.#last[column] === s ? this.#lastId[column] : this.#defined.get(s);
      if (n !== undefined) {
        this.#last[column] = s;
        this.#lastId[column] = n;
        this.#room(at, 3);
        this.#buf[at] = REF;
        this.#buf.writeUInt16LE(n, at + 1);
        return at + 3;
      }
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.#room(at, 7 + 3 * s.length);
    let head = 5;
    if (repeating && this.#defined.size < MAX_DEFINED && s.length <= MAX_DEFINED_LENGTH) {
      const n = this.#defined.size;
      this.#defined.set(s, n);
      this.#last[column] = s;
      this.#lastId[column] = n;
      this.#buf[at] = DEFINE;
      this.#buf.writeUInt16LE(n, at + 1);
      head = 7;
    } else this.#buf[at] = STRING;
    const buf = this.#buf;
    const from = at + head;
    // Short ASCII text is copied here: cheaper than a call into the UTF-8 encoder.
    let bytes = s.length <= SHORT ? ascii(buf, s, from) : -1;
    if (bytes >= 0) buf[at] = (buf[at] as number) | ASCII;
    else bytes = buf.write(s, from, 'utf8');
    buf.writeUInt32LE(bytes, from - 4);
    return from + bytes;
  }

  /** Grows the buffer, keeping its first `at` bytes, so that `more` bytes fit after them. */
  #room(at: number, more: number): void {
    if (at + more <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, at + more));
    this.#buf.copy(next, 0, 0, at);
    this.#buf = next;
  }
}

/**
 * The rows of a file of records (it starts with RECORD_MARK): each record's values, or null for
 * one that is not a well-formed row of 30 values (its length still finds the next). A record cut
 * off by the end of the file — a kill mid-write — ends the reading.
 */
export function decodeRecords(buf: Buffer): (unknown[] | null)[] {
  const rows: (unknown[] | null)[] = [];
  const defined: string[] = [];
  let at = 0;
  while (at + HEADER <= buf.length) {
    if (buf[at] !== RECORD_MARK) break; // not a record: nothing after it can be found
    const end = at + HEADER + buf.readUInt32LE(at + 1);
    if (end > buf.length) break;
    rows.push(decodeRecord(buf, at + HEADER, end, defined));
    at = end;
  }
  return rows;
}

function decodeRecord(buf: Buffer, from: number, end: number, defined: string[]): unknown[] | null {
  const values: unknown[] = [];
  let at = from;
  const fits = (n: number) => at + n <= end;
  while (at < end && values.length < EVENT_COLUMNS.length) {
    const tag = buf[at++];
    if (tag === NULL) values.push(null);
    else if (tag === NUMBER && fits(8)) {
      values.push(buf.readDoubleLE(at));
      at += 8;
    } else if (tag === REF && fits(2)) {
      const s = defined[buf.readUInt16LE(at)];
      if (s === undefined) return null;
      values.push(s);
      at += 2;
    } else if (((tag ?? 0) & ~ASCII) === STRING || ((tag ?? 0) & ~ASCII) === DEFINE) {
      const define = ((tag as number) & ~ASCII) === DEFINE;
      if (!fits(define ? 6 : 4)) return null;
      const n = define ? buf.readUInt16LE(at) : -1;
      if (define) at += 2;
      const len = buf.readUInt32LE(at);
      at += 4;
      if (!fits(len)) return null;
      const s = buf.toString((tag as number) & ASCII ? 'latin1' : 'utf8', at, at + len);
      at += len;
      if (n >= 0) defined[n] = s;
      values.push(s);
    } else return null;
  }
  return at === end && values.length === EVENT_COLUMNS.length ? values : null;
}
