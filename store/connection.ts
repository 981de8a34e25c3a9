/**
 * The event store file: where it lives, and opening a connection to it with the settings every
 * connection needs; when SQLite checkpoints on each (`AUTOCHECKPOINT_PAGES`) is the caller's.
 */
import { chmodSync, closeSync, constants, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from './errors.js';

/** The file name inside the state directory. */
export const STORE_FILE = 'events.sqlite';

/** `<stateDir>/events.sqlite`, creating the directory (0750) when needed. */
export function storePath(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  return join(stateDir, STORE_FILE);
}

/** The inode at `path`, 0 when nothing is there: another one means the file was replaced. */
export function statIno(path: string): number {
  try {
    return statSync(path).ino;
  } catch {
    return 0;
  }
}

/**
 * The store holds every VM's memory-error history: readable by the daemon's user only. SQLite
 * creates a new file with the process umask (0644 by default) and gives its -wal and -shm files
 * the main file's mode, so the main file is created (or narrowed) here first.
 */
const STORE_FILE_MODE = 0o600;

/**
 * Linux's O_PATH, which Node's constants lack: a descriptor that names a file without opening it
 * for reading or writing. Closing it leaves this process's POSIX locks on the file as they are,
 * where closing any other descriptor of a file drops every lock the process holds on it — those of
 * the SQLite connections other threads have open on the store. With their locks gone, another
 * process's `sqlite3` (a backup, a query) believes itself the last connection when it closes, and
 * deletes the -wal and -shm this process still writes to: the next connection opened here then
 * writes to another WAL, and the store is corrupt (SQLite's "How To Corrupt", 2.2.1).
 */
const O_PATH = 0o10000000;

/** A main file that is not there yet: created, never through a link, for writing by its owner only. */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Never through a symlink and only a regular file, the main file and its -wal and -shm alike: a
 * link planted in the state directory would have the daemon (root) change the mode of, and write
 * into, whatever it names. Each thread's connection comes through here while the others' are open:
 * an existing file is looked at through an O_PATH descriptor only, and narrowed through its
 * /proc/self/fd link; the only descriptor opened for writing is the one that creates the main file.
 */
/** Narrows `file`, open as the O_PATH descriptor `fd`, to 0600: through its /proc/self/fd link. */
function narrow(file: string, fd: number): void {
  try {
    chmodSync(`/proc/self/fd/${fd}`, STORE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new Error(`${file} is mode wider than 0600 and /proc is not mounted to narrow it: chmod 600 it`);
  }
}

function createPrivate(path: string): void {
  try {
    closeSync(openSync(path, CREATE_FLAGS, STORE_FILE_MODE));
  } catch (err) {
    // There already (or a link): looked at below. SQLite creates -wal and -shm with its mode.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    let fd: number;
    try {
      fd = openSync(file, O_PATH | constants.O_NOFOLLOW);
    } catch (err) {
      // absent: SQLite creates it with the main file's mode
      if (file !== path && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      const st = fstatSync(fd);
      if (st.isSymbolicLink())
        throw new Error(`${file} is a symbolic link; the store's files must be its own`);
      if (!st.isFile()) throw new Error(`${file} is not a regular file`);
      // A hard link is another file's name too (root may link any file): narrowing and writing
      // it would change that file.
      if (st.nlink !== 1)
        throw new Error(`${file} has ${st.nlink} hard links; the store's files must be its own`);
      // Left by an older seawall with the old mode: narrowed too (SQLite reuses them as they are).
      if ((st.mode & 0o077) !== 0) narrow(file, fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** How long a connection waits for a lock another connection holds (SQLite's busy timeout). */
const BUSY_TIMEOUT_MS = 250;

/**
 * How long the daemon's start waits for the write lock (`whileStarting`): an operator's `sqlite3`
 * in a transaction, a VACUUM of a large store. Nothing is answered before READY anyway, and a
 * start that failed at once would be restarted by systemd until its start limit left the unit
 * failed. Within the time the daemon asks systemd for each slow step of its start (120 s).
 */
export const START_BUSY_TIMEOUT_MS = 60_000;

/**
 * SQLite checkpoints the WAL inside the commit that takes it past `wal_autocheckpoint` pages, on
 * whichever connection makes that commit. The writer thread checkpoints when nothing waits for it
 * (store/writer-thread.ts `CHECKPOINT_ROWS`); past this many pages (~40 MB) SQLite does it on the
 * writer's connection and, once a writer thread has started (store/write-ahead.ts), on the event
 * loop's: the WAL's bound should the thread never find a moment to. At SQLite's default of 1,000,
 * a rare commit on the event loop once the thread runs (a segment taken over from a dead or slow
 * thread, a drain after a read waited 2 s) could copy the ~3,000 pages a storm leaves between two
 * of the thread's checkpoints, with every vCPU's verdict waiting (42–55 ms, docs/performance.md).
 * Until a thread runs, the event loop's connection keeps the default: only its own commits
 * (session, action and policy rows) are in the WAL, checkpointed at ~4 MB. The retention thread
 * keeps the default too: it checkpoints its own deletes, so they never add up to a WAL that a
 * commit on the event loop would take past this bound.
 */
export const AUTOCHECKPOINT_PAGES = 10_000;

/**
 * Opens `path` in WAL mode, synchronous=NORMAL; with `autocheckpointPages`, SQLite's checkpoint
 * comes past that many WAL pages instead of 1,000. Throws StoreError SEAWALL_STORE_OPEN.
 */
export function openDatabase(path: string, autocheckpointPages?: number): Database.Database {
  let db: Database.Database;
  try {
    createPrivate(path);
    // Only this process writes (the event loop and the writer thread); their transactions are
    // milliseconds long, so a wait this short is enough and cannot stall verdicts noticeably.
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new StoreError('SEAWALL_STORE_OPEN', `cannot open event store ${path}: ${(err as Error).message}`, {
      path,
    });
  }
  try {
    // Takes effect only before the first table exists: lets retention return freed pages to the
    // OS. Set only then: setting it takes the write lock, which another connection may hold.
    if (db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get() === 0)
      db.pragma('auto_vacuum = INCREMENTAL');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal')
      throw new StoreError('SEAWALL_STORE_OPEN', `journal_mode is ${String(mode)}, WAL is required`, {
        path,
      });
    db.pragma('synchronous = NORMAL');
    if (autocheckpointPages !== undefined) db.pragma(`wal_autocheckpoint = ${autocheckpointPages}`);
    return db;
  } catch (err) {
    db.close();
    throw storeOpenError(path, err, 'cannot configure event store');
  }
}

/**
 * What opening the store met, as the StoreError the daemon stops its start with: a StoreError (too
 * new a schema, a failed migration) as it is, anything else as SEAWALL_STORE_OPEN. A file that is
 * not SQLite's, or damaged past reading (SQLITE_NOTADB, SQLITE_CORRUPT), is said with what to do:
 * nothing here can repair it, and the operator decides what becomes of its events. SQLite may only
 * find the damage past the header, in the first page a statement reads (the highest row id, the
 * boot table), so every step of the opening is mapped, not only the first.
 */
export function storeOpenError(path: string, err: unknown, doing = 'cannot open event store'): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const unusable = code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT';
  return new StoreError(
    'SEAWALL_STORE_OPEN',
    `${doing} ${path}: ${(err as Error).message}${
      unusable ? '; move the file aside (with its -wal and -shm files) to start a new store' : ''
    }`,
    { path, ...(typeof code === 'string' ? { sqlite: code } : {}) },
    { cause: err },
  );
}

/**
 * Runs `fn` with the connection's busy timeout at 0: a write that finds the lock held fails at once
 * instead of waiting. For the event loop's retries while the store is faulty already: another
 * process holding the write lock for long would otherwise cost every retry the whole timeout, and
 * every VM's verdicts with it.
 */
export function withoutBusyWait<T>(db: Database.Database, fn: () => T): T {
  return withBusyWait(db, 0, fn);
}

/** Runs `fn` with the connection's busy timeout at `ms`, then puts it back. */
export function withBusyWait<T>(db: Database.Database, ms: number, fn: () => T): T {
  if (!db.open) return fn();
  db.pragma(`busy_timeout = ${ms}`);
  try {
    return fn();
  } finally {
    if (db.open) db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }
}
