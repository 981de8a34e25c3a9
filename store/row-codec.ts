/**
 * The write-ahead file's binary event records. The verdict path writes every stored event before
 * it answers it; as a JSON line, building the row (its `hex64` texts) and stringifying its 31
 * values was the largest part of the store's work on the event loop, and the writer thread paid
 * `JSON.parse` for it again. A record is written straight from the event's record
 * (store/event-columns.ts `writeColumns`) and read back into the row's values, its 64-bit values
 * as the store keeps them.
 *
 * A record: the byte 0xB1 (never the first byte of a JSON line or of UTF-8 text), its body's length
 * (u32 LE), the body, and a newline (so that the text lines between records — updates,
 * store/update-lines.ts — each start a line of their own). The body is one tag per column, then its
 * bytes: null; a number (f64 LE, or i32 LE for an integer that fits); a 64-bit value (u64 LE, read
 * back as the integer `event_rows` stores: store/stored-values.ts); a string (u32 LE byte length,
 * UTF-8, or ASCII copied byte by byte); a reference to a string defined earlier in the same file
 * (u16 LE); or a definition (u16 LE number, then the string) that is used at once. The boot id, the
 * VM, its labels, the kind, the rule — strings a storm repeats in every row — are written once per
 * file. A definition may reuse a number: the last one before a reference is the one it means, so an
 * encoder that lost track of what reached the file (a write cut off) starts numbering again. Each
 * file is read from its start.
 */
import { endianness } from 'node:os';
import type { ColumnSink } from './event-columns.js';
import { EVENT_COLUMNS } from './rows.js';
import { storedU64At } from './stored-values.js';

export const RECORD_MARK = 0xb1;
const NEWLINE = 0x0a;
const NULL = 0;
const NUMBER = 1;
const STRING = 2;
const REF = 3;
const DEFINE = 4;
const U64 = 5;
const INT = 6;
/** A string (or a definition) whose bytes are all ASCII: read back without UTF-8 decoding. */
const ASCII = 8;

/** Strings numbered per file; past it, strings are written in full. */
export const MAX_DEFINED = 4096;
/** Strings longer than this (UTF-16 units) are never numbered, and the table stays small. */
const MAX_DEFINED_LENGTH = 1024;
/** The columns whose strings repeat from row to row. */
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

const INITIAL_BYTES = 64 * 1024;
/** A buffer grown past this for one batch is let go before the next. */
const MAX_KEPT_BYTES = 1024 * 1024;
const HEADER = 5;
const COLUMNS = EVENT_COLUMNS.length;
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

/** A u64 is copied to the record through these, in the host's byte order: when that is LE. */
const LITTLE_ENDIAN = endianness() === 'LE';
const U64_SCRATCH = new BigUint64Array(1);
const U64_BYTES = new Uint8Array(U64_SCRATCH.buffer);

/** What a record is written from: store/event-columns.ts `RecordRow`. */
export interface RecordSource {
  write(out: ColumnSink): void;
}

/**
 * Encodes the writes to one write-ahead file at a time: `reset` whenever the file it appends to is
 * a new one, or when bytes it returned did not all reach the file.
 */
export class RecordEncoder implements ColumnSink {
  #defined = new Map<string, number>();
  /** Per column, the string last referred to and its number: most rows repeat their neighbour's. */
  #last: (string | null)[] = EVENT_COLUMNS.map(() => null);
  #lastId: number[] = EVENT_COLUMNS.map(() => 0);
  #buf = Buffer.allocUnsafe(INITIAL_BYTES);
  #at = 0;
  #column = 0;

  reset(): void {
    this.#defined.clear();
    this.#last.fill(null);
  }

  /**
   * The rows' records, then `lines` (each ended by a newline), in a buffer the next call reuses:
   * write it before encoding again. If it does not reach the file whole, `reset` before the next.
   */
  encode(rows: readonly RecordSource[], lines: readonly string[] = []): Buffer {
    this.#at = 0;
    // A storm's one large batch does not keep its buffer for good.
    if (this.#buf.length > MAX_KEPT_BYTES) this.#buf = Buffer.allocUnsafe(INITIAL_BYTES);
    for (const row of rows) {
      const start = this.#at;
      this.#room(HEADER);
      this.#at += HEADER;
      this.#column = 0;
      row.write(this);
      this.#room(1);
      const buf = this.#buf;
      buf[start] = RECORD_MARK;
      buf.writeUInt32LE(this.#at - start - HEADER, start + 1);
      buf[this.#at++] = NEWLINE;
    }
    for (const line of lines) {
      this.#room(1 + 3 * line.length);
      this.#at += this.#buf.write(line, this.#at, 'utf8');
      this.#buf[this.#at++] = NEWLINE;
    }
    return this.#buf.subarray(0, this.#at);
  }

  num(n: number | null): void {
    this.#column++;
    this.#room(9);
    const buf = this.#buf;
    const at = this.#at;
    if (n === null) {
      buf[at] = NULL;
      this.#at = at + 1;
    } else if ((n | 0) === n) {
      buf[at] = INT;
      buf.writeInt32LE(n, at + 1);
      this.#at = at + 5;
    } else {
      buf[at] = NUMBER;
      buf.writeDoubleLE(n, at + 1);
      this.#at = at + 9;
    }
  }

  u64(v: bigint | null): void {
    this.#column++;
    this.#room(9);
    if (v === null) {
      this.#buf[this.#at++] = NULL;
      return;
    }
    const buf = this.#buf;
    const at = this.#at;
    buf[at] = U64;
    if (LITTLE_ENDIAN) {
      // ~2 ns against ~57 for writeBigUInt64LE, which splits the BigInt with BigInt arithmetic.
      U64_SCRATCH[0] = v;
      for (let i = 0; i < 8; i++) buf[at + 1 + i] = U64_BYTES[i] as number;
    } else buf.writeBigUInt64LE(v, at + 1);
    this.#at = at + 9;
  }

  text(s: string | null): void {
    const column = this.#column++;
    if (s === null) {
      this.#room(1);
      this.#buf[this.#at++] = NULL;
      return;
    }
    const repeating = repeats[column] === true;
    if (repeating) {
      const n = this.#last[column] === s ? this.#lastId[column] : this.#defined.get(s);
      if (n !== undefined) {
        this.#last[column] = s;
        this.#lastId[column] = n;
        this.#room(3);
        this.#buf[this.#at] = REF;
        this.#buf.writeUInt16LE(n, this.#at + 1);
        this.#at += 3;
        return;
      }
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.#room(7 + 3 * s.length);
    const buf = this.#buf;
    const at = this.#at;
    let head = 5;
    if (repeating && this.#defined.size < MAX_DEFINED && s.length <= MAX_DEFINED_LENGTH) {
      const n = this.#defined.size;
      this.#defined.set(s, n);
      this.#last[column] = s;
      this.#lastId[column] = n;
      buf[at] = DEFINE;
      buf.writeUInt16LE(n, at + 1);
      head = 7;
    } else buf[at] = STRING;
    const from = at + head;
    // Short ASCII text is copied here: cheaper than a call into the UTF-8 encoder.
    let bytes = s.length <= SHORT ? ascii(buf, s, from) : -1;
    if (bytes >= 0) buf[at] = (buf[at] as number) | ASCII;
    else bytes = buf.write(s, from, 'utf8');
    buf.writeUInt32LE(bytes, from - 4);
    this.#at = from + bytes;
  }

  /** Grows the buffer, keeping what is encoded so far, so that `more` bytes fit after it. */
  #room(more: number): void {
    if (this.#at + more <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, this.#at + more));
    this.#buf.copy(next, 0, 0, this.#at);
    this.#buf = next;
  }
}

/**
 * Reads a write-ahead file: each record's values (null for one that is not a well-formed record
 * of 31 values; its length still finds the next) to `onRecord`, each text line to `onLine`. A
 * record cut off by the end of the file — a kill mid-write — ends the reading; so does a record
 * whose newline is missing (nothing after it can be trusted to start where it seems to). Returns
 * where that record starts when its length ends inside the file, short of its newline, or runs
 * past the end of the file while its columns end inside it (`torn`): a file cut short never
 * looks so, so the bytes from there on are damaged, not torn. -1 otherwise.
 */
export function readWriteAhead(
  buf: Buffer,
  onRecord: (values: unknown[] | null) => void,
  onLine: (line: string) => void,
): number {
  const defined: string[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf[at] === RECORD_MARK) {
      if (at + HEADER > buf.length) return -1;
      const end = at + HEADER + buf.readUInt32LE(at + 1);
      if (end >= buf.length) return torn(buf, at + HEADER) ? -1 : at;
      if (buf[end] !== NEWLINE) return at;
      onRecord(decodeRecord(buf, at + HEADER, end, defined));
      at = end + 1;
      continue;
    }
    let nl = buf.indexOf(NEWLINE, at);
    if (nl < 0) nl = buf.length;
    if (nl > at) onLine(buf.toString('utf8', at, nl));
    at = nl + 1;
  }
  return -1;
}

/**
 * Whether a record whose length runs past the end of the file, its columns starting at `from`, is
 * what a write cut off leaves: the start of a record, its length written before its columns, so
 * that its columns run out before the file does. Columns that end inside the file, or a tag no
 * seawall writes, are not a torn record but a damaged length: the bytes after it may be every
 * later record of the file.
 */
function torn(buf: Buffer, from: number): boolean {
  let at = from;
  for (let i = 0; i < COLUMNS; i++) {
    if (at >= buf.length) return true;
    const tag = buf[at++] as number;
    const kind = tag & ~ASCII;
    if (tag === NULL) continue;
    if (tag === INT) at += 4;
    else if (tag === U64 || tag === NUMBER) at += 8;
    else if (tag === REF) at += 2;
    else if (kind === STRING || kind === DEFINE) {
      if (kind === DEFINE) at += 2;
      if (at + 4 > buf.length) return true;
      at += 4 + buf.readUInt32LE(at);
    } else return false;
  }
  return at >= buf.length;
}

/**
 * A record's values, or null when it is not a well-formed record. A reference to a string the file
 * has not defined (a damaged number, or a definition lost with a damaged record before it) costs
 * this record only: its columns are still read, so that the strings it defines after it are there
 * for the records that refer to them.
 */
function decodeRecord(buf: Buffer, from: number, end: number, defined: string[]): unknown[] | null {
  const values: unknown[] = new Array(COLUMNS);
  let at = from;
  let i = 0;
  let undefinedRef = false;
  for (; i < COLUMNS && at < end; i++) {
    const tag = buf[at++] as number;
    if (tag === NULL) values[i] = null;
    else if (tag === INT) {
      if (at + 4 > end) return null;
      values[i] = buf.readInt32LE(at);
      at += 4;
    } else if (tag === U64) {
      if (at + 8 > end) return null;
      values[i] = storedU64At(buf, at);
      at += 8;
    } else if (tag === REF) {
      if (at + 2 > end) return null;
      const s = defined[buf.readUInt16LE(at)];
      if (s === undefined) undefinedRef = true;
      values[i] = s;
      at += 2;
    } else if (tag === NUMBER) {
      if (at + 8 > end) return null;
      values[i] = buf.readDoubleLE(at);
      at += 8;
    } else if ((tag & ~ASCII) === STRING || (tag & ~ASCII) === DEFINE) {
      const define = (tag & ~ASCII) === DEFINE;
      if (at + (define ? 6 : 4) > end) return null;
      const n = define ? buf.readUInt16LE(at) : -1;
      if (define) at += 2;
      const len = buf.readUInt32LE(at);
      at += 4;
      if (at + len > end) return null;
      const s = buf.toString(tag & ASCII ? 'latin1' : 'utf8', at, at + len);
      at += len;
      if (n >= 0) defined[n] = s;
      values[i] = s;
    } else return null;
  }
  return at === end && i === COLUMNS && !undefinedRef ? values : null;
}
