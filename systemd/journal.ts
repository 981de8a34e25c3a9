/**
 * Structured logging to journald through its native protocol, sd_journal_sendv(3), with a plain
 * stderr line as the fallback when journald is not there.
 *
 * Where entries go is decided once, at creation (systemd.exec(5), JOURNAL_STREAM: a service whose
 * stderr is the journal stream "may upgrade" to the native protocol). Per entry the logger only
 * builds the iovec array: field names are validated the first time they are seen and their
 * `KEY=` prefixes cached, and no library symbol is looked up.
 *
 * sd_journal_sendv blocks while journald's receive queue is full (a journald stopped, or slow on
 * its disk): on the event loop that answers vCPUs it held every verdict until journald came back.
 * So entries are sent off it, one at a time in order, through koffi's asynchronous call (a
 * thread of libuv's pool; the library's functions may be called from any thread), and wait in a
 * queue of at most {@link JOURNAL_QUEUE} meanwhile. Past it entries are dropped and counted, and
 * one entry says how many once journald takes entries again. Entries that come one per event may
 * fill only half of it: one VM's flood of memory errors must not crowd out another VM's kill. Once
 * that half is full, an entry of a VM (their SEAWALL_VM field) holding fewer of its places than
 * another takes the place of the oldest of a VM holding the most (journal-queue.ts): no number of
 * VMs' floods crowds out another VM's few memory errors either.
 */
import { fstatSync } from 'node:fs';
import type { SystemdErrorHandler } from './errors.js';
import { SystemdError } from './errors.js';
import type { JournalFieldValue } from './journal-fields.js';
import { assertFieldName, JournalField as F, fieldValueText } from './journal-fields.js';
import { formatJournalLine } from './journal-line.js';
import { JournalQueue } from './journal-queue.js';
import type { IoVec } from './libsystemd.js';
import { errnoName, LIBSYSTEMD_SONAME, tryLoadLibsystemd } from './libsystemd.js';
import { sendLine } from './send-line.js';
import { probeUnixDatagram } from './unix-socket-probe.js';

/** The native journal socket, fixed in libsystemd (systemd-journald.service(8)). */
export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** syslog(3) priorities as journald stores them in PRIORITY=. */
export const Priority = {
  EMERG: 0,
  ALERT: 1,
  CRIT: 2,
  ERR: 3,
  WARNING: 4,
  NOTICE: 5,
  INFO: 6,
  DEBUG: 7,
} as const;

/** A syslog priority, 0 (emerg) … 7 (debug). */
export type JournalPriority = (typeof Priority)[keyof typeof Priority];

/** One structured entry. */
export interface JournalEntry {
  /** Human-readable MESSAGE=. */
  message: string;
  priority: JournalPriority;
  /** MESSAGE_ID= from message-ids.ts; 32 lowercase hex digits. */
  messageId?: string;
  /** Custom fields, normally SEAWALL_* names from journal-fields.ts; `undefined` values are left out. */
  fields?: Readonly<Record<string, JournalFieldValue>>;
  /**
   * One of a stream of entries, one per event (a memory error, a downgrade): while journald falls
   * behind, these wait in at most half of the queue, so that a flood of them leaves room for the
   * rest (kills, migrations, session ends, the daemon's own). Once that half is full, one of a VM
   * (its SEAWALL_VM field) holding fewer of them than another VM takes the place of the oldest of
   * a VM holding the most, so that floods leave room for a quieter VM's memory errors.
   */
  perEvent?: boolean;
}

/** Where a logger writes. */
export type JournalTarget = 'journal' | 'stderr';

/** Options for {@link createJournalLogger}. */
export interface JournalLoggerOptions {
  /** SYSLOG_IDENTIFIER=, e.g. `seawall`. */
  identifier: string;
  /** `auto` (default) decides as documented on {@link createJournalLogger}; the others force a target. */
  mode?: 'auto' | JournalTarget;
  /** Socket probed in `auto` mode; only tests change it (libsystemd always sends to {@link JOURNAL_SOCKET}). */
  socketPath?: string;
  /**
   * Where stderr lines go; defaults to `process.stderr`. Its `writableLength`, when it has one,
   * bounds what waits for a slow reader ({@link STDERR_BACKLOG_BYTES}).
   */
  output?: { write(chunk: string): unknown; readonly writableLength?: number };
  /** Reports a failing sd_journal_sendv (once per run of failures) and a libsystemd missing under systemd. */
  onError?: SystemdErrorHandler;
  /** Environment holding JOURNAL_STREAM; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** The library to load; only tests change it. */
  library?: string;
}

/** A structured logger bound to one target. */
export interface JournalLogger {
  /** The target chosen at creation. Entries still fall back to stderr one by one if a send fails. */
  readonly target: JournalTarget;
  /**
   * Logs one entry.
   *
   * @throws {SystemdError} `SEAWALL_SYSTEMD_ENTRY_INVALID` or `SEAWALL_SYSTEMD_FIELD_INVALID` for
   *   a malformed entry (a programming error, found the first time that shape is logged).
   */
  log(entry: JournalEntry): void;
  /**
   * Resolves true once every entry logged so far has been handed to journald, false if that has
   * not happened within `timeoutMs` (journald not taking them: the process may then exit
   * without them). Stderr lines are written at once: always true.
   */
  drain(timeoutMs: number): Promise<boolean>;
}

/** Entries waiting for journald at most; past it they are dropped and counted. */
export const JOURNAL_QUEUE = 1024;
/**
 * Per-event entries ({@link JournalEntry.perEvent}) are dropped and counted once this many wait,
 * each one's own or, when its VM holds fewer than another, the oldest of a VM holding the most.
 */
export const JOURNAL_QUEUE_PER_EVENT = JOURNAL_QUEUE / 2;

/**
 * Bytes of stderr lines waiting for their reader past which further lines are dropped and counted:
 * Node holds what a pipe does not take in memory, and a reader that stops (a stalled log
 * collector, a terminal on hold) would otherwise grow the daemon by every line of a storm. Once
 * the reader catches up, one line says how many were dropped.
 */
export const STDERR_BACKLOG_BYTES = 1024 * 1024;

/** `output.write`, bounded by {@link STDERR_BACKLOG_BYTES}. */
function boundedWriter(output: NonNullable<JournalLoggerOptions['output']>): (text: string) => void {
  let dropped = 0;
  return (text) => {
    if ((output.writableLength ?? 0) >= STDERR_BACKLOG_BYTES) {
      dropped++;
      return;
    }
    if (dropped > 0) {
      const n = dropped;
      dropped = 0;
      output.write(
        formatJournalLine(
          `${n} log lines dropped: stderr did not take them as fast as they came`,
          4,
          undefined,
          {
            [F.REASON]: 'stderr_backlog',
            [F.SUPPRESSED]: n,
          },
        ),
      );
    }
    output.write(text);
  };
}

// Field names come from constants, so the cache stays small; the bound only stops a caller that
// builds names dynamically from growing it without limit (such names are validated every time).
const PREFIX_CACHE_LIMIT = 256;
const MESSAGE_ID = /^[0-9a-f]{32}$/;

/** True when JOURNAL_STREAM names the file open on stderr (systemd.exec(5), $JOURNAL_STREAM). */
export function stderrIsJournalStream(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env.JOURNAL_STREAM;
  if (stream === undefined) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/**
 * Creates a logger. In `auto` mode entries go to journald when libsystemd loads and either
 * JOURNAL_STREAM matches stderr's device:inode or the journal socket accepts a connection;
 * otherwise to stderr lines (journal-line.ts). If sd_journal_sendv fails later, that entry is
 * written to stderr and the failure reported through `onError`.
 */
export function createJournalLogger(options: JournalLoggerOptions): JournalLogger {
  const write = boundedWriter(options.output ?? process.stderr);
  const onError = options.onError ?? (() => {});
  const env = options.env ?? process.env;
  const identifier = `SYSLOG_IDENTIFIER=${options.identifier.replace(/\n/g, ' ')}`;
  const identifierVec: IoVec = { iov_base: identifier, iov_len: Buffer.byteLength(identifier) };
  const priorities = [0, 1, 2, 3, 4, 5, 6, 7].map((p) => ({ iov_base: `PRIORITY=${p}`, iov_len: 10 }));
  const prefixes = new Map<string, string>();
  const messageIds = new Map<string, IoVec>();

  function prefixOf(name: string): string {
    const cached = prefixes.get(name);
    if (cached !== undefined) return cached;
    assertFieldName(name);
    const prefix = `${name}=`;
    if (prefixes.size < PREFIX_CACHE_LIMIT) prefixes.set(name, prefix);
    return prefix;
  }

  function messageIdVec(id: string): IoVec {
    const cached = messageIds.get(id);
    if (cached !== undefined) return cached;
    if (!MESSAGE_ID.test(id)) {
      throw new SystemdError(
        'SEAWALL_SYSTEMD_ENTRY_INVALID',
        `MESSAGE_ID ${JSON.stringify(id)} is not 32 hex digits`,
        {
          messageId: id,
        },
      );
    }
    const vec = { iov_base: `MESSAGE_ID=${id}`, iov_len: 43 };
    if (messageIds.size < PREFIX_CACHE_LIMIT) messageIds.set(id, vec);
    return vec;
  }

  function checkPriority(priority: number): IoVec {
    const vec = priorities[priority];
    if (vec === undefined) {
      throw new SystemdError('SEAWALL_SYSTEMD_ENTRY_INVALID', `priority ${priority} is not 0..7`, {
        priority,
      });
    }
    return vec;
  }

  function toStderr(entry: JournalEntry): void {
    checkPriority(entry.priority);
    if (entry.messageId !== undefined) messageIdVec(entry.messageId);
    if (entry.fields !== undefined) for (const key in entry.fields) prefixOf(key);
    write(formatJournalLine(entry.message, entry.priority, entry.messageId, entry.fields));
  }

  const lib = tryLoadLibsystemd(options.library ?? LIBSYSTEMD_SONAME);
  const mode = options.mode ?? 'auto';
  let target: JournalTarget;
  if (lib instanceof SystemdError) {
    // Outside systemd a missing libsystemd is unremarkable; under it, journald was expected.
    if (mode === 'journal' || env.JOURNAL_STREAM !== undefined) onError(lib);
    target = 'stderr';
  } else if (mode === 'stderr') {
    target = 'stderr';
  } else {
    // Only a socket that listens: sd_journal_sendv(3) returns success when there is none, and
    // every entry would vanish — under a JOURNAL_STREAM too (a service whose root lacks the
    // socket), where stderr is the journal's own stream.
    const socket = options.socketPath ?? JOURNAL_SOCKET;
    target = probeUnixDatagram(socket) === 'listening' ? 'journal' : 'stderr';
    if (target === 'stderr' && mode === 'journal')
      onError(
        new SystemdError(
          'SEAWALL_SYSTEMD_UNAVAILABLE',
          `journald's socket ${socket} is not listening: entries go to stderr`,
        ),
      );
  }
  if (target === 'stderr' || lib instanceof SystemdError)
    return { target: 'stderr', log: toStderr, drain: () => Promise.resolve(true) };

  const sendv = lib.sdJournalSendv;
  let failing = false;
  const queue = new JournalQueue<{ iov: IoVec[]; entry: JournalEntry }>();
  let dropped = 0;
  const line = sendLine();

  function sent(entry: JournalEntry, rc: number): void {
    if (rc >= 0) {
      failing = false;
      return;
    }
    write(formatJournalLine(entry.message, entry.priority, entry.messageId, entry.fields));
    if (failing) return;
    failing = true;
    onError(
      new SystemdError('SEAWALL_SYSTEMD_JOURNAL_SEND_FAILED', `sd_journal_sendv failed: ${errnoName(rc)}`, {
        errno: errnoName(rc),
      }),
    );
  }

  function pump(): void {
    const next = line.take(queue);
    if (next === undefined) return;
    sendv.async(next.iov, next.iov.length, (err: unknown, rc: number) => {
      sent(next.entry, err ? -1 : rc);
      if (dropped > 0 && queue.length < JOURNAL_QUEUE) {
        const n = dropped;
        dropped = 0;
        enqueue({
          message: `${n} log entries dropped: journald did not take them as fast as they came`,
          priority: 4,
          fields: { [F.REASON]: 'journal_backlog', [F.SUPPRESSED]: n },
        });
      }
      pump();
    });
  }

  function enqueue(entry: JournalEntry): void {
    const vmField = entry.perEvent ? entry.fields?.[F.VM] : undefined;
    const vm = vmField === undefined ? undefined : String(vmField);
    if (queue.length >= (entry.perEvent ? JOURNAL_QUEUE_PER_EVENT : JOURNAL_QUEUE)) {
      // One entry is dropped either way: this one, or the oldest of a VM holding more.
      dropped++;
      if (vm === undefined || queue.dropForFewer(vm) === undefined) return;
    }
    queue.push({ iov: vecsOf(entry), entry }, vm);
    if (!line.sending) pump();
  }

  function vecsOf(entry: JournalEntry): IoVec[] {
    const message = `MESSAGE=${entry.message}`;
    const iov: IoVec[] = [
      { iov_base: message, iov_len: Buffer.byteLength(message) },
      checkPriority(entry.priority),
      identifierVec,
    ];
    if (entry.messageId !== undefined) iov.push(messageIdVec(entry.messageId));
    const fields = entry.fields;
    if (fields !== undefined) {
      for (const key in fields) {
        const value = fields[key];
        if (value === undefined) continue;
        // libsystemd switches to the binary-safe encoding itself when a value holds a newline.
        const item = prefixOf(key) + fieldValueText(value);
        iov.push({ iov_base: item, iov_len: Buffer.byteLength(item) });
      }
    }
    return iov;
  }

  return { target: 'journal', log: enqueue, drain: line.drain };
}
