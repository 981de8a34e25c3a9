/**
 * Where the daemon keeps the migration manager's memory: `migrations.json` in the state directory
 * once ensureSafeDir vouched for it, only when a hook is configured; a state directory others may
 * write is a warning, and nothing is read from or written to it; so is one whose
 * migrations.json.lock another holds, until it is released. Real directories, real flock(2).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { type Actions, ActionsConfigSchema, createActions } from '../../actions/index.js';
import { ConfigSchema, resolveConfig } from '../../daemon/config.js';
import type { DaemonLog } from '../../daemon/log.js';
import { rememberMigrations } from '../../daemon/migration-state.js';
import type { JournalEntry } from '../../systemd/index.js';

const HOOKS = { hooks: { orch: { type: 'http', url: 'http://127.0.0.1:9/m' } } };

function setUp(t: TestContext, actionsConfig: object) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-mstate-d-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const entries: JournalEntry[] = [];
  const log = { target: 'stderr', log: (e: JournalEntry) => entries.push(e) } as unknown as DaemonLog;
  const file = ConfigSchema.parse({ actions: actionsConfig });
  const config = (stateDir: string) => resolveConfig(file, { stateDir });
  const actions: Actions = createActions(ActionsConfigSchema.parse(actionsConfig));
  t.after(() => actions.close());
  return { dir, entries, log, config, actions };
}

test('a hook configured: the state file in the state directory, made safely, written at stop', async (t) => {
  const { dir, entries, log, config, actions } = setUp(t, HOOKS);
  const stateDir = join(dir, 'state');
  const hold = rememberMigrations(config(stateDir), actions, log);
  t.after(() => hold?.release());
  assert.notEqual(hold, null);
  assert.deepEqual(entries, []);
  await actions.close();
  assert.equal(existsSync(join(stateDir, 'migrations.json')), true);
});

test('the state file held by another: a warning naming the holder, and nothing read or written', async (t) => {
  const first = setUp(t, HOOKS);
  const stateDir = join(first.dir, 'state');
  const hold = rememberMigrations(first.config(stateDir), first.actions, first.log);
  t.after(() => hold?.release());
  const second = setUp(t, HOOKS);
  assert.equal(rememberMigrations(second.config(stateDir), second.actions, second.log), null);
  assert.equal(second.entries.length, 1);
  assert.match(
    String(second.entries[0]?.message),
    new RegExp(
      `^migration state: .*migrations\\.json is in use by another seawall daemon \\(pid ${process.pid}\\).*` +
        'runs without migration memory',
    ),
  );
  await second.actions.close();
  assert.equal(existsSync(join(stateDir, 'migrations.json')), false, 'the second wrote nothing');
  // Released: the next one has it.
  hold?.release();
  const third = setUp(t, HOOKS);
  const again = rememberMigrations(third.config(stateDir), third.actions, third.log);
  t.after(() => again?.release());
  assert.notEqual(again, null);
  assert.deepEqual(third.entries, []);
});

test('no hook configured: nothing read, nothing written, no state directory made', async (t) => {
  const { dir, entries, log, config, actions } = setUp(t, {});
  const stateDir = join(dir, 'state');
  assert.equal(rememberMigrations(config(stateDir), actions, log), null);
  await actions.close();
  assert.deepEqual(entries, []);
  assert.equal(existsSync(stateDir), false);
});

test('a state directory others may write: a warning, and the daemon goes on without the file', async (t) => {
  const { dir, entries, log, config, actions } = setUp(t, HOOKS);
  const stateDir = join(dir, 'open');
  mkdirSync(stateDir);
  chmodSync(stateDir, 0o777);
  rememberMigrations(config(stateDir), actions, log);
  await actions.close();
  assert.equal(entries.length, 1);
  assert.match(String(entries[0]?.message), /^migration state: refusing to use .*open.*writable by everyone/);
  assert.equal(existsSync(join(stateDir, 'migrations.json')), false);
});
