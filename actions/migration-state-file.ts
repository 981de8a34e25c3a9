/**
 * The migration manager's memory on disk (migration-memory.ts): `migrations.json` in the daemon's
 * state directory, one entry per VM instance. Written whole, atomically — a temporary file written
 * and fsynced, renamed over the old one, the directory fsynced — off the verdict path: changes are
 * coalesced behind a short timer and written asynchronously, one write at a time, and once more,
 * last, when the daemon stops.
 *
 * The file is read as hostile at start: a file that is not a regular file, is larger than its
 * bound, is not JSON or does not match the schema (zod) is not used, and the daemon starts with
 * nothing remembered; it never stops the start. A regular file is set aside as `migrations.json.bad`
 * (setAside), where the operator can read it; the warning says where it went, or why it stayed.
 * More requests sent than run at once are no reason not to use a file: the surplus is left out,
 * and the warning says so.
 * An entry whose process is gone, or whose pid now names a process with another start time, is
 * dropped: a pid is never taken on trust.
 */
import { constants, lstatSync, renameSync, type Stats } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as z from 'zod';
import { readRegularFile } from '../policies/index.js';
import type { MigrationPayload } from './hook-types.js';
import type { RememberedMigration } from './migration-memory.js';
import { processStartTicks } from './vm-instance.js';

export const MIGRATION_STATE_FILE = 'migrations.json';
/** Added to the state file's name where an unusable one is set aside: one name, so one file. */
export const SET_ASIDE_SUFFIX = '.bad';

/** Bytes allowed per entry when the file is read: an entry at its longest fits in fewer. */
const ENTRY_BYTES = 2048;
/**
 * Bytes allowed per request sent (`sent`), besides its pages: the labels, escaped at their longest
 * (docs/protocol.md limits), fit in fewer; each page adds at most PAGE_BYTES.
 */
const SENT_BYTES = 80 * 1024;
const PAGE_BYTES = 24;
/**
 * How many times `SentBounds.count` requests sent at their longest the file's bytes may hold: a file
 * written by an older build kept those read back at its start and not asked again (at most `count`)
 * beside the hooks running at its stop (at most `count` more). Read, and cut down to `count`
 * (loadMigrationState).
 */
const OLDER_SENT = 2;

/** How much of what hooks were sent the file may hold: as many as run at once, each this long. */
export interface SentBounds {
  count: number;
  pages: number;
}
/** How long a change waits for others to be written with it. */
export const WRITE_DELAY_MS = 100;

const migrationId = z.uuid();
const policyVersion = z.string().min(1).max(256);

const vmId = z.string().min(1).max(128);
const hex = z.string().regex(/^0x[0-9a-f]{1,16}$/);

/** A payload as hook-types.ts has it, as build() in migration-payload.ts makes it. */
const sentSchema = (pages: number) =>
  z.strictObject({
    migrationId,
    vm: z.strictObject({ id: vmId, labels: z.record(z.string(), z.string()) }),
    host: z.string(),
    reason: z.literal('policy'),
    scope: z.enum(['vm', 'host']),
    rule: z.string(),
    policyVersion,
    event: z.strictObject({
      vm: vmId,
      kind: z.string(),
      vcpu: z.number().int().nonnegative().nullable(),
      gpa: hex.nullable(),
      severity: z.string(),
      timeMs: z.number(),
    }),
    poisonedPages: z.array(hex).max(pages),
    poisonedPagesTruncated: z.boolean(),
    requestedAt: z.string(),
  });

const entrySchema = (pages: number) =>
  z
    .strictObject({
      vm: vmId,
      pid: z
        .number()
        .int()
        .positive()
        .max(2 ** 22),
      startTicks: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
      accepted: migrationId.optional(),
      refused: z.strictObject({ policyVersion, migrationId }).optional(),
      pending: migrationId.optional(),
      sent: sentSchema(pages).optional(),
    })
    .refine((e) => e.sent === undefined || (e.sent.migrationId === e.pending && e.sent.vm.id === e.vm), {
      message: 'what was sent is not of the pending migration',
    });

const fileSchema = (maxEntries: number, sent: SentBounds) =>
  z.strictObject({
    version: z.literal(1),
    // More requests sent than `sent.count` are cut down to it, not refused (loadMigrationState).
    entries: z.array(entrySchema(sent.pages)).max(maxEntries),
  });

type Entry = z.infer<ReturnType<typeof entrySchema>>;

export interface LoadedMigrationState {
  entries: RememberedMigration[];
  /**
   * Why the file was not used, when it was not, or what of it was left out (requests sent beyond
   * the bound, from an older build); null when it was used whole or missing.
   */
  warning: string | null;
  /** Entries dropped because their process is gone or their pid names another process now. */
  stale: number;
}

/**
 * Reads the state file at `path`, at most `maxEntries` entries. Never throws: whatever is wrong
 * with the file is the warning, and nothing is remembered. A file with more requests sent than
 * `sent.count` (written by an older build, or under a larger `maxHooksInFlight`) within its bounds
 * is used: the first `sent.count` of them kept in file order, the others' entries without `pending`
 * and `sent` (dropped when that was all they held), and the warning says so.
 */
export function loadMigrationState(
  path: string,
  maxEntries: number,
  sent: SentBounds = { count: 8, pages: 1024 },
  startTicks: (pid: number) => number | null = processStartTicks,
): LoadedMigrationState {
  const empty = (warning: string | null): LoadedMigrationState => ({ entries: [], warning, stale: 0 });
  const sentBytes = OLDER_SENT * sent.count * (SENT_BYTES + sent.pages * PAGE_BYTES);
  // Not followed if a symlink, and a FIFO does not block the start.
  const read = readRegularFile(path, maxEntries * ENTRY_BYTES + sentBytes + 64, constants.O_NOFOLLOW);
  if (!read.ok && read.code === 'ENOENT') return empty(null);
  const unused = (why: string) =>
    empty(`${path} ${why}; ${setAside(path)}; migrations asked before the restart are not remembered`);
  if (!read.ok) return unused(`cannot be read: ${read.why}`);
  const text = read.text;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return unused(`is not JSON (${(err as Error).message})`);
  }
  const parsed = fileSchema(maxEntries, sent).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join('.') || 'the file';
    return unused(`is not a migration state file (${where}: ${issue?.message})`);
  }
  const entries: RememberedMigration[] = [];
  const seen = new Set<string>();
  let stale = 0;
  let sentKept = 0;
  let sentDropped = 0;
  // What was sent is kept as read, its keys in their order: sent again, it is the same bytes.
  const raw = (json as { entries: Array<{ sent?: MigrationPayload }> }).entries;
  for (const [i, e] of parsed.data.entries.entries()) {
    const id = `${e.vm}\0${e.pid}\0${e.startTicks}`;
    if (seen.has(id) || (e.accepted ?? e.refused ?? e.pending) === undefined) continue;
    seen.add(id);
    if (startTicks(e.pid) !== e.startTicks) {
      stale++;
      continue;
    }
    const out = withoutUndefined(e, raw[i]?.sent);
    if (out.sent !== undefined && sentKept++ >= sent.count) {
      // Its id is not asked again with another body: asked under a new id, as if not remembered.
      delete out.sent;
      delete out.pending;
      sentDropped++;
      if (out.accepted === undefined && out.refused === undefined) continue;
    }
    entries.push(out);
  }
  const warning =
    sentDropped === 0
      ? null
      : `${path} holds more requests sent than the ${sent.count} kept (maxHooksInFlight): ${sentDropped} ` +
        "of its migrations running at a stop are forgotten, asked again under new ids at their VM's next error; " +
        'the rest of the file is used';
  return { entries, warning, stale };
}

/**
 * Moves the unusable file at `path` out of the way of the next write, to `<path>.bad` (over one set
 * aside before, so they never pile up), and says what became of it. rename(2) follows no symlink,
 * neither the entry moved nor the one replaced, and opens nothing; both names are in the state
 * directory, which only the daemon can change (ensureSafeDir). Only a regular file is kept: another
 * entry (a symlink, a FIFO, a socket, a device) holds nothing to read, and is left for the next
 * write's rename to replace, the entry itself, neither opened nor followed; a directory is left,
 * and nothing is written until it is removed.
 */
function setAside(path: string): string {
  const errno = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    return `it is not set aside (${errno(err)})`;
  }
  if (st.isDirectory()) return 'a directory is left where it is, and nothing is written until it is removed';
  if (!st.isFile())
    return 'it is not a file to keep: the next write replaces it, neither opened nor followed';
  const bad = `${path}${SET_ASIDE_SUFFIX}`;
  try {
    renameSync(path, bad);
  } catch (err) {
    return `it cannot be set aside as ${bad} (${errno(err)}): the next write replaces it`;
  }
  return `set aside as ${bad}`;
}

function withoutUndefined(e: Entry, sent: MigrationPayload | undefined): RememberedMigration {
  const out: RememberedMigration = { vm: e.vm, pid: e.pid, startTicks: e.startTicks };
  if (e.accepted !== undefined) out.accepted = e.accepted;
  if (e.refused !== undefined) out.refused = { ...e.refused };
  if (e.pending !== undefined) out.pending = e.pending;
  if (sent !== undefined) out.sent = sent;
  return out;
}

export const encodeMigrationState = (entries: readonly RememberedMigration[]): string =>
  `${JSON.stringify({ version: 1, entries })}\n`;

/**
 * Writes `text` to `path` atomically: `<path>.tmp` made anew, written, fsynced and renamed over
 * `path`, then the directory fsynced. One write at a time (MigrationStateWriter). Whatever a killed
 * daemon, or anyone, left at `<path>.tmp` is unlinked first, never opened: a FIFO there would hold
 * the write (and the stop, which waits for it) until something read it, and a hard link would have
 * the file it shares truncated and written.
 */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await unlink(tmp).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    const f = await open(
      tmp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await f.writeFile(text);
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Writes what `snapshot` gives whenever `changed` says it changed: coalesced behind a timer, one
 * write at a time (a change during a write is written after it). `close` writes once more, last.
 */
export class MigrationStateWriter {
  readonly #path: string;
  readonly #snapshot: () => RememberedMigration[];
  readonly #warn: (message: string) => void;
  readonly #delayMs: number;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #dirty = false;
  #closed = false;
  /** The last write failed: the next failure is not told again. */
  #failing = false;
  /** Writes done (tests). */
  written = 0;

  constructor(
    path: string,
    snapshot: () => RememberedMigration[],
    warn: (message: string) => void,
    delayMs = WRITE_DELAY_MS,
  ) {
    this.#path = path;
    this.#snapshot = snapshot;
    this.#warn = warn;
    this.#delayMs = delayMs;
  }

  changed(): void {
    if (this.#closed) return;
    this.#dirty = true;
    if (this.#timer || this.#writing) return;
    this.#timer = setTimeout(() => this.#flush(), this.#delayMs);
    this.#timer.unref();
  }

  /** Waits for a write under way, then writes `last` (what was remembered as the daemon stopped). */
  async close(last: readonly RememberedMigration[]): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#writing;
    await this.#write(last);
  }

  #flush(): void {
    this.#timer = null;
    this.#dirty = false;
    this.#writing = this.#write(this.#snapshot()).then(() => {
      this.#writing = null;
      if (this.#dirty) {
        this.#dirty = false;
        this.changed();
      }
    });
  }

  async #write(entries: readonly RememberedMigration[]): Promise<void> {
    try {
      await writeAtomic(this.#path, encodeMigrationState(entries));
      this.written++;
      this.#failing = false;
    } catch (err) {
      if (this.#failing) return;
      this.#failing = true;
      this.#warn(
        `cannot write ${this.#path}: ${(err as Error).message}; after a restart, migrations asked now may be asked again under new ids`,
      );
    }
  }
}
