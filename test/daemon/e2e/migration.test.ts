/**
 * Upgrade in place through the daemon: a store written in schema version 1 (the first release's
 * SQL, written here with its rows) is put at `<dir>/state/events.sqlite` and the current daemon is
 * started on it. The old rows come back intact through `seawall events` and `seawall poison` (the
 * compiled CLI on the control socket), the file is at the current schema version, and new events
 * are stored beside the old ones — a repeat error on an old poisoned page counts onto that page.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { ACTION } from '../../../protocol/index.js';
import type { PoisonedPage, StoredEvent } from '../../../store/index.js';
import { SCHEMA_VERSION, STORE_FILE, schemaVersion } from '../../../store/index.js';
import { PluginClient } from '../../../vmm/plugin-client.js';
import { seaExit } from '../../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { V1_SCHEMA } from '../../store/v1-schema.js';
import { cliJson } from './run-cli.js';

const VM = 'vm-legacy';
const PAGE = 0x80002000n;
const PAGE_HEX = '0x0000000080002000';
const SIGBUS_PAGE_HEX = '0x0000000080005000';
const V1_APPLIED_MS = 1_690_000_000_000;

/** The rows a version-1 daemon wrote: three events of VM, one of another VM, two poisoned pages. */
function writeV1Store(path: string, t0: number): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(V1_SCHEMA);
  db.prepare('INSERT INTO schema_version VALUES (1, ?, ?)').run(V1_APPLIED_MS, 'events, poisoned pages');
  const insert = db.prepare(`
    INSERT INTO events (boot_id, session_id, seq, time_ms, vm, labels, vcpu, kind, esr, ec, fsc, fsc_class,
      abort, severity, sigbus_code, gva, gpa, replay, fallback_action, action, rule, policy_version,
      downgrade, verdict_action, verdict_flags, latency_ns, non_conforming)
    VALUES (@boot_id, @session_id, @seq, @time_ms, @vm, @labels, @vcpu, @kind, @esr, @ec, @fsc, @fsc_class,
      @abort, @severity, @sigbus_code, @gva, @gpa, @replay, @fallback_action, @action, @rule, @policy_version,
      @downgrade, @verdict_action, @verdict_flags, @latency_ns, @non_conforming)`);
  const base = {
    boot_id: 'old-boot',
    session_id: 3,
    labels: '{"tenant":"red"}',
    esr: null,
    ec: null,
    fsc: null,
    fsc_class: null,
    abort: null,
    sigbus_code: null,
    gva: null,
    gpa: null,
    replay: 0,
    fallback_action: null,
    downgrade: null,
    non_conforming: null,
  };
  insert.run({
    ...base,
    seq: 17,
    time_ms: t0,
    vm: VM,
    vcpu: 2,
    kind: 'sea',
    esr: '0x0000000092000410',
    ec: 0x24,
    fsc: 0x10,
    fsc_class: 'sea',
    abort: 'data',
    severity: 'uer',
    gva: '0xffff800000401bad',
    gpa: PAGE_HEX,
    action: 'inject',
    rule: 'default',
    policy_version: 'v1-policy',
    verdict_action: ACTION.INJECT,
    verdict_flags: 0,
    latency_ns: 41_000,
  });
  insert.run({
    ...base,
    seq: 18,
    time_ms: t0 + 1000,
    vm: VM,
    vcpu: null,
    kind: 'sigbus',
    severity: 'unknown',
    sigbus_code: 'BUS_MCEERR_AO',
    gpa: SIGBUS_PAGE_HEX,
    action: 'none',
    rule: 'sigbus-record-only',
    policy_version: 'v1-policy',
    verdict_action: ACTION.RESUME,
    verdict_flags: 0,
    latency_ns: 12_000,
  });
  insert.run({
    ...base,
    seq: 19,
    time_ms: t0 + 2000,
    vm: VM,
    vcpu: 0,
    kind: 'nisv',
    replay: 1,
    fallback_action: ACTION.INJECT,
    esr: '0x0000000090000000',
    ec: 0x24,
    fsc: 0,
    fsc_class: 'other',
    abort: 'data',
    severity: 'unknown',
    gpa: '0x0000000008000000',
    action: null,
    rule: null,
    policy_version: null,
    verdict_action: null,
    verdict_flags: null,
    latency_ns: null,
  });
  insert.run({
    ...base,
    boot_id: 'old-boot',
    session_id: 4,
    seq: 1,
    time_ms: t0 + 3000,
    vm: 'vm-neighbour',
    labels: '{}',
    vcpu: 0,
    kind: 'mmio',
    abort: 'data',
    severity: 'unknown',
    gpa: '0x0000000008000000',
    action: 'inject',
    rule: 'default',
    policy_version: 'v1-policy',
    verdict_action: ACTION.INJECT,
    verdict_flags: 0,
    latency_ns: 9000,
  });
  const poison = db.prepare('INSERT INTO poisoned_pages VALUES (?, ?, ?, ?, ?)');
  poison.run(VM, PAGE_HEX, t0, t0, 1);
  poison.run(VM, SIGBUS_PAGE_HEX, t0 + 1000, t0 + 1000, 1);
  db.close();
}

test('a schema-1 store under the current daemon: old rows intact, schema current, new rows beside', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-migrate-'));
  let d: RunningDaemon | null = null;
  let db: Database.Database | null = null;
  t.after(async () => {
    db?.close();
    await d?.kill();
    removeDir(dir);
  });
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o750 });
  const file = join(stateDir, STORE_FILE);
  const t0 = Date.now() - 2 * 3_600_000;
  writeV1Store(file, t0);

  d = await startDaemon({ dir, metrics: false });
  const ctl = d.controlSocket;

  const old = await cliJson<StoredEvent[]>(ctl, ['events', '--vm', VM]);
  assert.deepEqual(
    old.map((e) => [e.bootId, e.sessionId, e.seq, e.kind, e.timeMs]),
    [
      ['old-boot', 3, 17, 'sea', t0],
      ['old-boot', 3, 18, 'sigbus', t0 + 1000],
      ['old-boot', 3, 19, 'nisv', t0 + 2000],
    ],
  );
  const [sea, sigbus, nisv] = old as [StoredEvent, StoredEvent, StoredEvent];
  assert.deepEqual(
    {
      labels: sea.labels,
      vcpu: sea.vcpu,
      esr: sea.esr,
      ec: sea.ec,
      fsc: sea.fsc,
      fscClass: sea.fscClass,
      abort: sea.abort,
      severity: sea.severity,
      gva: sea.gva,
      gpa: sea.gpa,
      action: sea.action,
      rule: sea.rule,
      policyVersion: sea.policyVersion,
      verdictAction: sea.verdictAction,
      latencyNs: sea.latencyNs,
      replay: sea.replay,
      downgrades: sea.downgrades,
      nonConforming: sea.nonConforming,
      // Columns migration 2 added read as "not known" on old rows.
      kernelMismatch: sea.kernelMismatch,
      applied: sea.applied,
      appliedMs: sea.appliedMs,
    },
    {
      labels: { tenant: 'red' },
      vcpu: 2,
      esr: '0x0000000092000410',
      ec: 0x24,
      fsc: 0x10,
      fscClass: 'sea',
      abort: 'data',
      severity: 'uer',
      gva: '0xffff800000401bad',
      gpa: PAGE_HEX,
      action: 'inject',
      rule: 'default',
      policyVersion: 'v1-policy',
      verdictAction: ACTION.INJECT,
      latencyNs: 41_000,
      replay: false,
      downgrades: [],
      nonConforming: [],
      kernelMismatch: null,
      applied: null,
      appliedMs: null,
    },
  );
  assert.equal(sigbus.vcpu, null);
  assert.equal(sigbus.sigbusCode, 'BUS_MCEERR_AO');
  assert.equal(sigbus.action, 'none');
  assert.equal(nisv.replay, true);
  assert.equal(nisv.fallbackAction, ACTION.INJECT);
  assert.equal(nisv.action, null);
  assert.equal((await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'vm-neighbour'])).length, 1);
  assert.deepEqual(await cliJson<PoisonedPage[]>(ctl, ['poison', '--vm', VM]), [
    { vm: VM, gpa: PAGE_HEX, firstSeenMs: t0, lastSeenMs: t0, count: 1 },
    { vm: VM, gpa: SIGBUS_PAGE_HEX, firstSeenMs: t0 + 1000, lastSeenMs: t0 + 1000, count: 1 },
  ]);

  // A new error of the same VM on the page it already lost.
  const c = new PluginClient({
    socket: d.socket,
    vmId: VM,
    vcpuCount: 4,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  const out = await c.handleExit(seaExit({ vcpu: 1, gpa: PAGE + 0x123n }));
  await c.close();
  assert.equal(out.source, 'daemon');
  const all = await cliJson<StoredEvent[]>(ctl, ['events', '--vm', VM]);
  assert.equal(all.length, 4);
  assert.deepEqual(all.slice(0, 3), old, 'the old rows are unchanged by the new one');
  const fresh = all[3] as StoredEvent;
  assert.notEqual(fresh.bootId, 'old-boot');
  assert.equal(fresh.seq, out.verdict.seq);
  assert.equal(fresh.gpa, PAGE_HEX);
  assert.equal(fresh.verdictAction, out.verdict.action);
  assert.ok(fresh.id > Math.max(...old.map((e) => e.id)));
  const pages = await cliJson<PoisonedPage[]>(ctl, ['poison', '--vm', VM]);
  assert.deepEqual(pages[0], {
    vm: VM,
    gpa: PAGE_HEX,
    firstSeenMs: t0,
    lastSeenMs: fresh.timeMs,
    count: 2,
  });
  assert.equal(pages[1]?.count, 1);

  assert.equal(await d.stop(), 0);
  db = new Database(file, { readonly: true, fileMustExist: true });
  assert.equal(schemaVersion(db), SCHEMA_VERSION);
  const versions = db.prepare('SELECT version, applied_ms FROM schema_version ORDER BY version').all() as {
    version: number;
    applied_ms: number;
  }[];
  assert.deepEqual(
    versions.map((v) => v.version),
    Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
  );
  assert.equal(versions[0]?.applied_ms, V1_APPLIED_MS, 'version 1 keeps the time it was applied');
  assert.equal(db.prepare('SELECT COUNT(*) FROM events').pluck().get(), 5);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
});
