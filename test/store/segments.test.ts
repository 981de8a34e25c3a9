/**
 * The write-ahead files as the daemon finds them in its state directory: a batch a full disk cut
 * short is not left torn, and at start a file that is not one of the daemon's — a FIFO, a symlink,
 * a huge file, a line that parses but is no row — neither blocks the start, nor is followed, nor
 * costs the rows of the files beside it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { EventStore, isStoreError, WriteAhead } from '../../store/index.js';
import { RecordEncoder } from '../../store/row-codec.js';
import { encodeRow } from '../../store/row-lines.js';
import { appendWhole, MAX_FILE_BYTES, segmentPath } from '../../store/segments.js';
import { record, session, tempStorePath } from './records.js';

const T0 = Date.UTC(2026, 11, 2, 3, 0, 0);
const dirs: string[] = [];
const mounts: string[] = [];
after(() => {
  for (const m of mounts) execFileSync('umount', [m]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a batch that a full disk writes only in part is cut off again, and the write fails', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to mount a small tmpfs');
  const dir = mkdtempSync('/tmp/seawall-short-');
  dirs.push(dir);
  const fs = join(dir, 'fs');
  mkdirSync(fs);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', fs]);
  mounts.push(fs);
  const file = join(fs, 'events.sqlite.pending');
  writeFileSync(file, 'x'.repeat(100)); // one page, most of it free
  try {
    writeFileSync(join(fs, 'filler'), Buffer.alloc(128 * 1024));
  } catch {
    // ENOSPC: every other page taken, which is the point
  }
  const fd = openSync(file, 'a');
  try {
    // The kernel takes what fits in the file's last page and answers with that count, no error.
    assert.throws(() => appendWhole(fd, 'y'.repeat(8000)), { code: 'ENOSPC', message: /short write/ });
  } finally {
    closeSync(fd);
  }
  assert.equal(readFileSync(file, 'utf8'), 'x'.repeat(100), 'the file as it was before the batch');
});

function openStore() {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const errors: Error[] = [];
  const store = new EventStore({ path, onError: (_op, err) => errors.push(err as Error) });
  return { dir, path, store, errors };
}

test('at start, files that are not the daemon’s are set aside; the rows beside them are stored', () => {
  const { dir, path, store, errors } = openStore();
  const s = session('vm-f', 5n);
  const rowsOf = (from: number, to: number) =>
    store.rowsOf(
      Array.from({ length: to - from + 1 }, (_, i) => record({ session: s, seq: from + i, timeMs: T0 })),
    );
  const pending = `${path}.pending`;
  execFileSync('mkfifo', [segmentPath(pending, 1)]); // would block an open, and so the start
  writeFileSync(segmentPath(pending, 2), `${rowsOf(1, 10).map(encodeRow).join('\n')}\n`);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'not the store’s');
  symlinkSync(victim, segmentPath(pending, 3)); // not followed, not truncated
  writeFileSync(segmentPath(pending, 4), ''); // then made larger than any the daemon writes
  truncateSync(segmentPath(pending, 4), MAX_FILE_BYTES + 1);
  // A line that parses, with the right number of columns, but is no row: skipped, not fatal.
  const bad = JSON.stringify(new Array(rowsOf(11, 11)[0]?.values.length).fill(null));
  writeFileSync(pending, `${rowsOf(11, 15).map(encodeRow).join('\n')}\n${bad}\n`);
  symlinkSync(victim, `${path}.pending.5`);
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err as Error) });
  assert.equal(ahead.recovered, 15);
  assert.equal(store.queries.totals().events, 15);
  assert.equal(readFileSync(victim, 'utf8'), 'not the store’s');
  const aside = readdirSync(dir).filter((n) => n.includes('.set-aside-'));
  assert.equal(aside.length, 4, `set aside: ${aside.join(', ')}`);
  assert.equal(errors.filter((e) => /set aside as/.test(e.message)).length, 4);
  assert.ok(statSync(pending).isFile() && existsSync(pending));
  ahead.close();
  store.close();
});

/** `n` events of `s` as the verdict path writes them to one file: a record each, seq 1 to n. */
function recordsOf(store: EventStore, s: ReturnType<typeof session>, n: number): Buffer[] {
  const rows = store.rowsOf(
    Array.from({ length: n }, (_, i) => record({ session: s, seq: i + 1, timeMs: T0 + i })),
  );
  const enc = new RecordEncoder();
  return rows.map((r) => Buffer.from(enc.encode([r])));
}

test('at start, a file damaged mid-way: the rows before the damage are stored, the file kept and told', () => {
  const { dir, path, store, errors } = openStore();
  const s = session('vm-d', 5n);
  const pieces = recordsOf(store, s, 10);
  const file = Buffer.concat(pieces);
  const at = Buffer.concat(pieces.slice(0, 4)).length; // the fifth record
  file.writeUInt32LE(3, at + 1); // its length now ends inside it, short of its newline
  const segment = segmentPath(`${path}.pending`, 1);
  writeFileSync(segment, file);
  // A segment beside it, whole: stored and removed as ever.
  writeFileSync(
    segmentPath(`${path}.pending`, 2),
    new RecordEncoder().encode(store.rowsOf([record({ session: s, seq: 11, timeMs: T0 + 11 })])),
  );
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err as Error) });
  assert.equal(ahead.recovered, 5);
  assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2, 3, 4, 11]);
  const kept = readdirSync(dir).filter((n) => n.includes('.set-aside-'));
  assert.equal(kept.length, 1);
  assert.ok(kept[0]?.startsWith('events.sqlite.pending.1.set-aside-'), kept[0]);
  assert.deepEqual(readFileSync(join(dir, kept[0] as string)), file, 'kept as it was, for reading by hand');
  assert.ok(!existsSync(segmentPath(`${path}.pending`, 2)), 'the whole one is removed');
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, 'SEAWALL_STORE_RECOVERY');
  assert.match(
    String(errors[0]?.message),
    new RegExp(
      `pending\\.1: bytes ${at}–${file.length} are not records .* the 4 rows read are stored; the file is kept as .*set-aside`,
    ),
  );
  ahead.close();
  store.close();
});

/** `file` was set aside as it was, for reading by hand, and one RECOVERY error told, matching `told`. */
function assertKept(dir: string, file: Buffer, errors: Error[], told: RegExp): void {
  const kept = readdirSync(dir).filter((n) => n.includes('.set-aside-'));
  assert.equal(kept.length, 1, 'kept rather than removed');
  assert.deepEqual(readFileSync(join(dir, kept[0] as string)), file, 'as it was, for reading by hand');
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as { code?: string }).code, 'SEAWALL_STORE_RECOVERY');
  assert.match(String(errors[0]?.message), told);
}

test('at start, a length damaged to run past the end of the file is not taken for a torn tail', () => {
  const { dir, path, store, errors } = openStore();
  const pieces = recordsOf(store, session('vm-l', 5n), 10);
  const file = Buffer.concat(pieces);
  const at = (pieces[0] as Buffer).length; // the second record
  file[at + 4] = 0x7f; // its length's top byte: ~2 GB, with the eight records after it in the file
  writeFileSync(segmentPath(`${path}.pending`, 1), file);
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err as Error) });
  assert.equal(ahead.recovered, 1);
  assertKept(dir, file, errors, new RegExp(`pending\\.1: bytes ${at}–${file.length} are not records`));
  ahead.close();
  store.close();
});

test('at start, whole records that are not rows: the rows read are stored, the file kept and told', () => {
  const { dir, path, store, errors } = openStore();
  const pieces = recordsOf(store, session('vm-u', 5n), 6);
  // The third record's first column has a tag no seawall writes; the fifth has one column too few
  // (its length and newline made to fit): framed whole, neither is a row.
  (pieces[2] as Buffer)[5] = 0x7f;
  const fifth = pieces[4] as Buffer;
  const idAt = fifth.length - 1 - 5; // the last column, the row's id: a tag and an i32, then the newline
  assert.equal(fifth[idAt], 6, 'the id is written as a 32-bit integer');
  const short = Buffer.concat([fifth.subarray(0, idAt), fifth.subarray(fifth.length - 1)]);
  short.writeUInt32LE(short.length - 6, 1);
  pieces[4] = short;
  const file = Buffer.concat(pieces);
  writeFileSync(segmentPath(`${path}.pending`, 1), file);
  const ahead = new WriteAhead(store, { onError: (_op, err) => errors.push(err as Error) });
  assert.equal(ahead.recovered, 4);
  assert.deepEqual(store.db.prepare('SELECT seq FROM events ORDER BY seq').pluck().all(), [1, 2, 4, 6]);
  assertKept(
    dir,
    file,
    errors,
    /pending\.1: 2 of its records are not rows this seawall can read .*; the 4 rows read are stored; the file is kept as .*set-aside/,
  );
  ahead.close();
  store.close();
});

test('a hard link at the write-ahead file: refused, and the file it names is left alone', () => {
  const { dir, path, store } = openStore();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'someone else’s\n', { mode: 0o644 });
  linkSync(victim, `${path}.pending`);
  assert.throws(
    () => new WriteAhead(store, { onError: () => {} }),
    (e: unknown) => isStoreError(e) && /pending has 2 hard links/.test(e.message),
  );
  store.close();
  assert.equal(readFileSync(victim, 'utf8'), 'someone else’s\n');
});

test('the store file, or its -wal, as a symlink: refused, and what it names is left alone', () => {
  for (const which of ['', '-wal']) {
    const { dir, path } = tempStorePath();
    dirs.push(dir);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'someone else’s', { mode: 0o644 });
    symlinkSync(victim, `${path}${which}`);
    assert.throws(() => new EventStore({ path }), /symbolic link; the store's files must be its own/);
    assert.equal(readFileSync(victim, 'utf8'), 'someone else’s');
    assert.equal(statSync(victim).mode & 0o777, 0o644, 'its mode untouched');
  }
});
