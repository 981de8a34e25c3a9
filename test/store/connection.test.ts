/**
 * Opening a connection while others of this process are open (store/connection.ts): the writer,
 * retention and reader threads each open the store while the event loop's connection holds it.
 * Closing any ordinary descriptor of the store's files drops every POSIX lock this process holds
 * on them; another process's connection — the `sqlite3` of a backup or a query, which the
 * operations guide allows while the daemon runs — then took itself for the last one when it
 * closed, and deleted the WAL this process still wrote to. The daemon's next connection wrote to
 * a new WAL beside it, and the store ended corrupt.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  linkSync,
  readdirSync,
  readlinkSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDatabase } from '../../store/connection.js';
import { EventStore, SCHEMA_VERSION } from '../../store/index.js';
import { WAIT_MS, within } from '../helpers/wait.js';
import { scratchStorePath } from './records.js';

const betterSqlite = createRequire(import.meta.url).resolve('better-sqlite3');

/** Another process reads the store and closes its connection, as `sqlite3 FILE 'SELECT …'` does. */
function readElsewhere(path: string): number {
  const script =
    'const D = require(process.argv[1]); const db = new D(process.argv[2]);' +
    "process.stdout.write(String(db.prepare('SELECT count(*) FROM t').pluck().get())); db.close();";
  return Number(execFileSync(process.execPath, ['-e', script, betterSqlite, path], { timeout: WAIT_MS }));
}

/** The store files this process holds open that have been deleted under it. */
function deletedUnderUs(path: string): string[] {
  const dir = '/proc/self/fd';
  return readdirSync(dir)
    .map((fd) => {
      try {
        return readlinkSync(join(dir, fd));
      } catch {
        return '';
      }
    })
    .filter((target) => target.startsWith(path) && target.endsWith('(deleted)'));
}

test("a second connection opened in this process keeps the first's locks: another process's close deletes no WAL", (t) => {
  const path = scratchStorePath();
  const first = openDatabase(path);
  t.after(() => first.close());
  first.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
  first.prepare('SELECT count(*) FROM t').get();
  // As a helper thread opens the store while the event loop's connection holds it.
  const second = openDatabase(path);
  second.close();
  assert.equal(readElsewhere(path), 1);
  assert.deepEqual(deletedUnderUs(path), [], "the other process's close left this process's -wal and -shm");
  // What this connection commits next is what every other connection reads.
  first.exec('INSERT INTO t VALUES (2)');
  assert.equal(readElsewhere(path), 2);
  const third = openDatabase(path);
  t.after(() => third.close());
  assert.equal(third.prepare('SELECT count(*) FROM t').pluck().get(), 2);
});

test('the store files stay private and never reached through a link', () => {
  const path = scratchStorePath();
  openDatabase(path).close();
  assert.equal(statSync(path).mode & 0o777, 0o600, 'a new main file is created 0600');
  // An older seawall's mode is narrowed, through the descriptor that names the file.
  chmodSync(path, 0o644);
  openDatabase(path).close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const elsewhere = `${path}.elsewhere`;
  writeFileSync(elsewhere, '');
  chmodSync(elsewhere, 0o644);
  symlinkSync(elsewhere, `${path}-wal`);
  assert.throws(() => openDatabase(path), /events\.sqlite-wal is a symbolic link/);
  assert.equal(statSync(elsewhere).mode & 0o777, 0o644, "the link's target is left alone");
  // A hard link is the other file itself: neither narrowed nor written (SQLite would fill a -shm).
  unlinkSync(`${path}-wal`);
  linkSync(elsewhere, `${path}-shm`);
  assert.throws(() => openDatabase(path), /events\.sqlite-shm has 2 hard links/);
  assert.equal(statSync(elsewhere).mode & 0o777, 0o644, 'the linked file is left alone');
  assert.equal(statSync(elsewhere).size, 0);
});

test("the store's opening waits out a write lock another process holds, past the run time's wait", async (t) => {
  const path = scratchStorePath();
  new EventStore({ path }).close();
  // An operator's `sqlite3` in a transaction: it holds the write lock for 1.5 s after saying so,
  // six times the 250 ms a connection waits at run time, then lets it go.
  const script =
    'const D = require(process.argv[1]); const db = new D(process.argv[2]);' +
    "db.exec('BEGIN IMMEDIATE'); process.stdout.write('locked\\n');" +
    "setTimeout(() => { db.exec('ROLLBACK'); db.close(); }, 1500);";
  const holder = spawn(process.execPath, ['-e', script, betterSqlite, path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(holder, 'exit');
  t.after(() => holder.kill('SIGKILL'));
  await within('the lock taken', once(holder.stdout, 'data'));
  // Migrating, numbering the boot and closing sessions a previous run left open all write.
  const store = new EventStore({ path });
  t.after(() => store.close());
  assert.equal(store.openedVersion, SCHEMA_VERSION);
  await within('the holder to end', exited);
});
