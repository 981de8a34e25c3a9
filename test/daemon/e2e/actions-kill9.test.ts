/**
 * An action's rows survive kill -9 of the daemon once written ahead, as an answered event's row
 * does (docs/operations.md, "Durability"). A kill policy decides a simulated VM's first
 * error; the VMM exits on the KILL verdict, so the action starts ('requested') and ends
 * ('exited'). Meanwhile the test holds the store's write lock, so nothing the daemon wrote ahead
 * can reach SQLite: the action's end is only in a write-ahead file when the daemon is SIGKILLed.
 * The next daemon on the same state directory recovers it: the store then holds the event, the
 * action with its outcome, and `seawall why` tells the kill as it would have without the crash.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import type { WhyResult } from '../../../control/index.js';
import { STORE_FILE } from '../../../store/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { until } from '../../helpers/wait.js';
import { cliJson, runCli } from './run-cli.js';

const POLICY = `version: 1
name: kill-first
rules:
  - name: kill-on-sea
    match: { kind: sea }
    action: { type: kill, grace: 30s }
default:
  action: { type: inject, abort: data }
`;

const daemons: RunningDaemon[] = [];
const dirs: string[] = [];
let lock: Database.Database | null = null;
after(async () => {
  lock?.close();
  for (const d of daemons) await d.kill();
  for (const dir of dirs) removeDir(dir);
});

/** The lines of every write-ahead file of the store: the live one, segments, the held copy. */
function writtenAhead(stateDir: string): string[] {
  const files = readdirSync(stateDir).filter((f) => f.startsWith(`${STORE_FILE}.pending`));
  return files.flatMap((f) => {
    try {
      return readFileSync(join(stateDir, f), 'utf8').split('\n');
    } catch {
      return []; // committed and unlinked between the listing and the read
    }
  });
}

interface ActionRow {
  action: string;
  vm: string;
  rule: string;
  outcome: string;
}

function storedActions(path: string): ActionRow[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT action, vm, rule, outcome FROM actions').all() as ActionRow[];
  } finally {
    db.close();
  }
}

test('a kill whose rows were only written ahead survives kill -9 of the daemon', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-k9-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  const args = ['--policy', join(dir, 'policy.yaml')];
  const one = await startDaemon({ dir, metrics: false, args });
  daemons.push(one);
  const store = join(one.stateDir, STORE_FILE);

  // From here until the kill, no commit can happen: every transaction waits for this one.
  lock = new Database(store, { fileMustExist: true });
  lock.exec('BEGIN IMMEDIATE');

  const sim = await runCli([
    'simulate',
    '--socket',
    one.socket,
    '--vms',
    '1',
    '--vcpus',
    '1',
    '--events',
    '3',
    '--vm-prefix',
    'k9',
    '--json',
  ]);
  assert.equal(sim.code, 0, sim.stderr);
  const summary = JSON.parse(sim.stdout) as { killed: string[]; verdicts: Record<string, number> };
  assert.deepEqual(summary.killed, ['k9-0']);
  assert.deepEqual(summary.verdicts, { kill: 1 }, 'the VMM ended at its first verdict, a KILL');

  // The action's end is written ahead once the daemon has seen the VMM exit.
  await until(
    "the kill's end in a write-ahead file",
    () => writtenAhead(one.stateDir).some((l) => l.includes('"action-end"') && l.includes('"exited"')),
    { everyMs: 20, state: () => writtenAhead(one.stateDir).join('\n') },
  );
  assert.deepEqual(storedActions(store), [], 'nothing reached SQLite before the kill');
  await one.kill();
  lock.exec('ROLLBACK');
  lock.close();
  lock = null;

  const two = await startDaemon({ dir, metrics: false, args });
  daemons.push(two);
  assert.deepEqual(storedActions(store), [
    { action: 'kill', vm: 'k9-0', rule: 'kill-on-sea', outcome: 'exited' },
  ]);
  const why = await cliJson<WhyResult>(two.controlSocket, ['why', 'k9-0']);
  assert.equal(why.entries.length, 1);
  const entry = why.entries[0];
  assert.equal(entry?.event.rule, 'kill-on-sea');
  assert.equal(entry?.event.action, 'kill');
  assert.equal(entry?.outcome?.outcome, 'exited');
});
