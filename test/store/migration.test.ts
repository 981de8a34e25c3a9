/**
 * Schema migrations on real files: a version-1 file written here from SQL (as seawall's first
 * schema created it) opens with the current code, keeps its data and comes out current; a file
 * from a newer seawall is refused; a failing migration changes nothing.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { REPLAY_LOOKUP_SQL } from '../../store/event-store.js';
import { EventStore, isStoreError, SCHEMA_VERSION, schemaVersion } from '../../store/index.js';
import { AGED_DELETES } from '../../store/prune.js';
import { record, session, tempStorePath } from './records.js';
import { V1_SCHEMA } from './v1-schema.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Schema version 1 exactly as the first release wrote it, with one event and one poisoned page. */
const V1_FIXTURE = `${V1_SCHEMA}
  INSERT INTO schema_version VALUES (1, 1690000000000, 'events, poisoned pages');
  INSERT INTO events (boot_id, session_id, seq, time_ms, vm, labels, vcpu, kind, esr, ec, fsc, fsc_class,
    abort, severity, gva, gpa, replay, action, rule, policy_version, verdict_action, verdict_flags, latency_ns)
  VALUES ('old-boot', 3, 17, 1690000001000, 'vm-legacy', '{"tenant":"red"}', 2, 'sea', '0x0000000092000410',
    36, 16, 'sea', 'data', 'uer', '0x0000000000401000', '0x0000000080002000', 0, 'kill', 'kill-all', 'abc',
    3, 0, 41000);
  INSERT INTO poisoned_pages VALUES ('vm-legacy', '0x0000000080002000', 1690000001000, 1690000001000, 1);
`;

function v1File(extraSql = ''): string {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(V1_FIXTURE + extraSql);
  db.close();
  return path;
}

test('a schema-1 file is upgraded in place: data intact, version current', () => {
  const path = v1File();
  const store = new EventStore({ path });
  assert.equal(store.openedVersion, 1);
  assert.equal(schemaVersion(store.db), SCHEMA_VERSION);
  const versions = store.db.prepare('SELECT version FROM schema_version ORDER BY version').pluck().all();
  assert.deepEqual(
    versions,
    Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
  );
  const [e] = store.queries.events({ vm: 'vm-legacy' });
  assert.ok(e);
  assert.equal(e.id, 1, 'rebuilt tables keep every row id');
  assert.equal(e.seq, 17);
  assert.equal(e.esr, '0x0000000092000410');
  assert.equal(e.gpa, '0x0000000080002000');
  assert.equal(e.action, 'kill');
  assert.deepEqual(e.labels, { tenant: 'red' });
  assert.equal(e.applied, null); // a column migration 2 added
  assert.equal(e.kernelMismatch, null);
  assert.deepEqual(store.queries.poisonedPages('vm-legacy'), [
    {
      vm: 'vm-legacy',
      gpa: '0x0000000080002000',
      firstSeenMs: 1690000001000,
      lastSeenMs: 1690000001000,
      count: 1,
    },
  ]);
  // The upgraded file takes new writes in the new tables.
  store.recordAction({ vm: 'vm-legacy', action: 'kill', rule: null, outcome: 'done' });
  assert.deepEqual(
    store.queries.actions('vm-legacy').map((a) => [a.action, a.outcome]),
    [['kill', 'done']],
  );
  // The rebuilt policy event decodes the legacy ESR.
  assert.equal(store.queries.recentPolicyEvents(0)[0]?.esr?.ec, 0x24);
  store.close();
  // Opening a current file again migrates nothing.
  const again = new EventStore({ path });
  assert.equal(again.openedVersion, SCHEMA_VERSION);
  again.close();
});

test('migration 10 keeps each 64-bit text as its integer, and the view shows the same text; other text stays as it was', () => {
  const texts = [
    '0x0000000000000000',
    '0x001fffffffffffff',
    '0x0020000000000000',
    '0x7fffffffffffffff',
    '0x8000000000000000',
    '0xffff800012345000',
    '0xffffffffffffffff',
    '0x10',
    'not hex',
  ];
  const rows = texts.map(
    (
      t,
      i,
    ) => `INSERT INTO events (boot_id, session_id, seq, time_ms, vm, labels, kind, esr, gva, gpa, severity,
      replay) VALUES ('${i % 2 ? 'boot-b' : 'boot-a'}', 1, ${100 + i}, 1690000002000, 'vm-m', '{}', 'sea', '${t}',
      '${t}', '${t}', 'uer', 0);`,
  );
  const store = new EventStore({ path: v1File(rows.join('\n')) });
  const shown = store.db.prepare("SELECT boot_id, esr, gva, gpa FROM events WHERE vm = 'vm-m' ORDER BY seq");
  assert.deepEqual(
    shown.raw().all(),
    texts.map((t, i) => [i % 2 ? 'boot-b' : 'boot-a', t, t, t]),
  );
  const kept = store.db.prepare("SELECT esr FROM event_rows WHERE vm = 'vm-m' ORDER BY seq").safeIntegers();
  assert.deepEqual(
    kept.pluck().all(),
    texts.map((t) => (t.length === 18 ? BigInt.asIntN(64, BigInt(t)) : t)),
  );
  // Each boot is numbered once; the rows of the file's first event keep theirs too.
  const boots = store.db.prepare('SELECT boot_id FROM boots ORDER BY n').pluck().all();
  assert.deepEqual(boots.slice(0, 3), ['old-boot', 'boot-a', 'boot-b']);
  store.close();
});

test('a file from a newer seawall is refused, untouched', () => {
  const path = v1File(
    `INSERT INTO schema_version VALUES (${SCHEMA_VERSION + 5}, 1790000000000, 'from the future');`,
  );
  const db = new Database(path);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const before = readFileSync(path);
  assert.throws(
    () => new EventStore({ path }),
    (err: unknown) =>
      isStoreError(err, 'SEAWALL_STORE_SCHEMA_TOO_NEW') &&
      err.detail.found === SCHEMA_VERSION + 5 &&
      /newer than this seawall understands/.test(err.message),
  );
  assert.deepEqual(readFileSync(path), before);
});

test('a migration that fails rolls back: the file stays at its version with its data', () => {
  // A stray table named like one migration 2 creates makes that migration fail.
  const path = v1File('CREATE TABLE actions (x INTEGER);');
  assert.throws(
    () => new EventStore({ path }),
    (err: unknown) => isStoreError(err, 'SEAWALL_STORE_MIGRATION') && err.detail.failedAt === 2,
  );
  const db = new Database(path, { readonly: true });
  assert.equal(schemaVersion(db), 1);
  const cols = db.prepare("SELECT name FROM pragma_table_info('events')").pluck().all();
  assert.ok(!cols.includes('applied'), 'ALTER TABLE of the failed migration was rolled back');
  assert.equal(db.prepare('SELECT COUNT(*) FROM events').pluck().get(), 1);
  db.close();
});

test('a file that is not a database is refused with SEAWALL_STORE_OPEN, saying what to do', async () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path, 'this is not sqlite, just text long enough to have a header page '.repeat(20));
  assert.throws(
    () => new EventStore({ path }),
    (err: unknown) =>
      isStoreError(err, 'SEAWALL_STORE_OPEN') &&
      err.detail.sqlite === 'SQLITE_NOTADB' &&
      /file is not a database; move the file aside \(with its -wal and -shm files\) to start a new store$/.test(
        err.message,
      ),
  );
});

test('a store damaged past its header is refused with SEAWALL_STORE_OPEN, saying what to do', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path });
  const s = session('vm-c', 3n);
  store.append(
    Array.from({ length: 2000 }, (_, i) => record({ session: s, seq: i + 1, timeMs: 1_700_000_000_000 })),
  );
  const root = store.db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'event_rows'").pluck().get();
  const pageSize = store.db.pragma('page_size', { simple: true }) as number;
  store.close(); // checkpoints: every page is in the main file
  // The event rows' root page overwritten: the header and the schema read well, the first statement
  // that reads the table (the highest row id, as the store opens) finds the damage.
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, ((root as number) - 1) * pageSize);
  closeSync(fd);
  const pending = `${path}.pending.1`;
  writeFileSync(pending, 'rows a killed daemon left\n');
  assert.throws(
    () => new EventStore({ path }),
    (err: unknown) =>
      isStoreError(err, 'SEAWALL_STORE_OPEN') &&
      err.detail.sqlite === 'SQLITE_CORRUPT' &&
      /malformed; move the file aside \(with its -wal and -shm files\) to start a new store$/.test(
        err.message,
      ),
  );
  assert.equal(
    readFileSync(pending, 'utf8'),
    'rows a killed daemon left\n',
    'the pending files are left alone',
  );
});

/** The events table's indexes (SQLite's own for UNIQUE included) and the columns of each. */
function eventIndexes(db: Database.Database): Record<string, string[]> {
  const names = db
    .prepare("SELECT name FROM pragma_index_list('event_rows') ORDER BY name")
    .pluck()
    .all() as string[];
  return Object.fromEntries(
    names.map((n) => [
      n,
      db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').pluck().all(n) as string[],
    ]),
  );
}

test('an upgraded file and a new one have the same indexes on event rows, and only these', () => {
  const upgraded = new EventStore({ path: v1File() });
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const fresh = new EventStore({ path });
  const want = {
    // a replay already stored is recognised
    events_plugin_time: ['plugin_time_ns'],
    // listings, rate windows, retention
    events_time: ['time_ms'],
    // one VM's listing, its last action, the VM summary
    events_vm_time: ['vm', 'time_ms'],
  };
  // Until the first start has recovered what an older seawall wrote ahead, rows are also found by
  // (boot, session, order), as its lines name them.
  const legacy = { events_legacy_key: ['boot', 'session_id', 'ord'] };
  assert.deepEqual(eventIndexes(upgraded.db), { ...want, ...legacy });
  assert.deepEqual(eventIndexes(fresh.db), { ...want, ...legacy });
  // Migrations 6 and 7 dropped (vm, gpa, time) and (boot, session, seq), and 9 the unique key
  // (boot, session, order) and (vm, seq, plugin time): every insert paid for them, and the row's
  // id (the primary key) and the exit time do their work.
  upgraded.recovered();
  fresh.recovered();
  assert.deepEqual(eventIndexes(upgraded.db), want);
  assert.deepEqual(eventIndexes(fresh.db), want);
  // A replay's check is one search of the exit times, never a walk through its VM's events.
  const plan = fresh.db.prepare(`EXPLAIN QUERY PLAN ${REPLAY_LOOKUP_SQL}`).all(1, 'vm', 1) as {
    detail: string;
  }[];
  assert.deepEqual(
    plan.map((p) => p.detail),
    ['SEARCH event_rows USING INDEX events_plugin_time (plugin_time_ns=?)'],
  );
  upgraded.close();
  fresh.close();
});

test('an upgraded file searches the actions, sessions and waiting results retention deletes by their time index', () => {
  const store = new EventStore({ path: v1File() });
  const indexed = (table: string) =>
    store.db
      .prepare(
        'SELECT il.name, ii.name FROM pragma_index_list(?) il, pragma_index_info(il.name) ii ORDER BY il.name',
      )
      .raw()
      .all(table) as [string, string][];
  assert.deepEqual(indexed('sessions'), [
    ['sessions_closed', 'closed_ms'],
    ['sqlite_autoindex_sessions_1', 'boot_id'],
    ['sqlite_autoindex_sessions_1', 'session_id'],
  ]);
  assert.ok(indexed('actions').some(([n, c]) => n === 'actions_time' && c === 'time_ms'));
  assert.ok(indexed('applied_waiting').some(([n, c]) => n === 'applied_waiting_time' && c === 'applied_ms'));
  // Each slice of retention's deletes is a search of the time index, then of the primary key: never
  // a walk through the table holding the write lock (3 million sessions took 0.7 s).
  const plans = Object.entries(AGED_DELETES).map(([table, sql]) => [
    table,
    (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(1, 10) as { detail: string }[]).map((p) => p.detail),
  ]);
  assert.deepEqual(Object.fromEntries(plans), {
    actions: [
      'SEARCH actions USING INTEGER PRIMARY KEY (rowid=?)',
      'LIST SUBQUERY 1',
      'SEARCH actions USING COVERING INDEX actions_time (time_ms<?)',
    ],
    sessions: [
      'SEARCH sessions USING PRIMARY KEY (boot_id=? AND session_id=?)',
      'LIST SUBQUERY 2',
      'SEARCH sessions USING COVERING INDEX sessions_closed (closed_ms<?)',
    ],
    applied_waiting: [
      'SEARCH applied_waiting USING INTEGER PRIMARY KEY (rowid=?)',
      'LIST SUBQUERY 1',
      'SEARCH applied_waiting USING COVERING INDEX applied_waiting_time (applied_ms<?)',
    ],
  });
  store.close();
});
