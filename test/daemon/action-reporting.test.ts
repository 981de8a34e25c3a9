/**
 * Where kill and migration outcomes are told: the store's actions row and the journal entry each
 * say how many later requests were folded into the action (docs/actions.md "coalesced"); a
 * migration dropped at a full hook queue is counted and logged within the notice bound.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { KillRecord, MigrationRecord } from '../../actions/index.js';
import { actionReporting } from '../../daemon/action-reporting.js';
import type { DaemonLog } from '../../daemon/log.js';
import { SeawallMetrics } from '../../metrics/index.js';
import { EventStore } from '../../store/index.js';
import type { JournalEntry } from '../../systemd/index.js';
import { value } from '../metrics/exposition.js';
import { tempStorePath } from '../store/records.js';

const dirs: string[] = [];
after(async () => {
  const { rmSync } = await import('node:fs');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('a kill and a migration with later requests folded in say so in their row and their entry', () => {
  const { dir, path } = tempStorePath();
  dirs.push(dir);
  const store = new EventStore({ path, bootId: 'boot-r' });
  const entries: JournalEntry[] = [];
  const log = { target: 'stderr', log: (e: JournalEntry) => entries.push(e) } as unknown as DaemonLog;
  const report = actionReporting({ store: () => store, reader: () => null }, null, log);
  const kill: KillRecord = {
    id: 1,
    vm: 'vm-k',
    sessionId: 3n,
    seq: null,
    rule: 'kill-uc',
    policyVersion: 'p',
    reason: 'policy',
    graceMs: 100,
    peerPid: 4242,
    vmmPid: 4242,
    startedAtMs: 1_000,
    coalesced: 0,
  };
  report.kill?.onStarted?.(kill);
  report.kill?.onFinished?.({
    ...kill,
    coalesced: 4,
    outcome: 'sigkilled',
    finishedAtMs: 1_100,
    detail: null,
  });
  const [k] = store.queries.actions('vm-k');
  assert.equal(k?.detail, '4 later kill decisions folded in');
  assert.match(String(entries.at(-1)?.message), /sigkilled — 4 later kill decisions folded in/);

  const migration = {
    migrationId: 'm-1',
    vm: 'vm-m',
    sessionId: 5n,
    seq: null,
    rule: 'move',
    hook: 'h',
    queuedAtMs: 2_000,
    coalesced: 0,
  } as unknown as MigrationRecord;
  report.migration?.onStarted?.(migration);
  report.migration?.onFinished?.({
    ...migration,
    coalesced: 99,
    outcome: 'refused',
    detail: 'HTTP 409',
  } as Parameters<NonNullable<NonNullable<typeof report.migration>['onFinished']>>[0]);
  const [m] = store.queries.actions('vm-m');
  assert.equal(m?.detail, 'HTTP 409; 99 later triggers folded in');
  // One folded in is said in the singular.
  const one = { ...kill, id: 2, vm: 'vm-1k' };
  report.kill?.onStarted?.(one);
  report.kill?.onFinished?.({ ...one, coalesced: 1, outcome: 'exited', finishedAtMs: 1_100, detail: null });
  assert.equal(store.queries.actions('vm-1k')[0]?.detail, '1 later kill decision folded in');
  store.close();
});

test('a migration dropped at a full hook queue is counted each time and logged within the notice bound', async () => {
  const metrics = new SeawallMetrics();
  const notices: string[] = [];
  const logged: JournalEntry[] = [];
  const log = {
    target: 'stderr',
    log: (e: JournalEntry) => logged.push(e),
    notice: (key: string) => notices.push(key),
  } as unknown as DaemonLog;
  const report = actionReporting({ store: () => null, reader: () => null }, metrics, log);
  for (let i = 0; i < 3; i++) report.migration?.onDropped?.('vm-d', 'evacuate');
  const text = await metrics.metricsText();
  assert.equal(value(text, 'seawall_migrations_total', { outcome: 'dropped' }), 3);
  // A storm's every later error of the VM asks again: never one unbounded log line per drop.
  assert.deepEqual(notices, ['hook_queue_full', 'hook_queue_full', 'hook_queue_full']);
  assert.deepEqual(logged, []);
});
