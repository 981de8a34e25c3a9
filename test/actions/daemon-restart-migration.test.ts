/**
 * The daemon restarted (SIGTERM, then started again on the same state directory) while a VM's
 * migration was accepted, or still running: the VM's plugin — the same process, this test process
 * — reconnects by itself, and its next error does not ask the hook again (the orchestrator is
 * moving it), or asks again under the same Idempotency-Key (the request it may have received before
 * the stop). Without that, the restarted daemon asked under a new id, and an orchestrator answering
 * the duplicate with 409 had onFailure kill the VM it was moving. The daemon as it ships
 * (dist/bin), a real HTTP hook server on 127.0.0.1, the store read after the last stop.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import { CAP, VERDICT_FLAG } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/wait.js';
import { heldServer } from './held-server.js';

const hook = heldServer();
const { when, requestsFor } = hook;
before(() => hook.listen());
after(() => hook.close());

const POLICY = `version: 1
name: restart
hooks: [orchestrator]
rules:
  - name: move
    match: { kind: [sea] }
    action: { type: migrate, hook: orchestrator, meanwhile: { abort: data }, onFailure: { type: none } }
default:
  action: { type: inject, abort: data }
`;

/** A daemon on `dir` whose hook `orchestrator` posts to the held server, once per migration. */
function daemonOn(dir: string): Promise<RunningDaemon> {
  return startDaemon({
    dir,
    metrics: false,
    args: ['--config', join(dir, 'config.yaml'), '--policy', join(dir, 'policy.yaml')],
  });
}

/** A directory with the policy and config, and a plugin of `vm` in this process that reconnects. */
function setUp(t: TestContext, vm: string) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-restart-mig-'));
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(
    join(dir, 'config.yaml'),
    `actions:\n  hooks:\n    orchestrator: { type: http, url: "${hook.url()}", timeoutMs: 600000, retries: 0 }\n`,
  );
  const daemons: RunningDaemon[] = [];
  let sessions = 0;
  const client = new PluginClient({
    socket: join(dir, 'plugin.sock'),
    vmId: vm,
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
    reconnect: { initialMs: 20, maxMs: 200 },
  });
  client.on('ready', () => sessions++);
  t.after(async () => {
    await client.close().catch(() => {});
    for (const d of daemons) await d.kill();
    removeDir(dir);
  });
  return {
    dir,
    client,
    sessions: () => sessions,
    async start() {
      const d = await daemonOn(dir);
      daemons.push(d);
      return d;
    },
    /** One SEA exit; its verdict says the VM is being migrated. */
    async sea(gpa: bigint) {
      const out = await client.handleExit({
        type: 'sea',
        vcpu: 0,
        kvmFlags: 1n,
        esr: 0x92000010n,
        gva: 0n,
        gpa,
      });
      assert.equal(out.verdict.flags & VERDICT_FLAG.MIGRATING, VERDICT_FLAG.MIGRATING);
    },
  };
}

/** The migrate rows of `vm` in the store of a stopped daemon, oldest first. */
function migrateRows(d: RunningDaemon, vm: string): unknown[] {
  const db = new Database(join(d.stateDir, 'events.sqlite'), { readonly: true });
  try {
    return db
      .prepare("SELECT outcome, detail FROM actions WHERE vm = ? AND action = 'migrate' ORDER BY rowid")
      .all(vm);
  } finally {
    db.close();
  }
}

test('accepted, then the daemon restarted: the reconnected VM is not asked for again', async (t) => {
  const vm = 'vm-restart-accepted';
  const s = setUp(t, vm);
  const first = await s.start();
  await s.client.connect();
  await s.sea(0x10000n);
  await when('the hook request', () => requestsFor(vm).length === 1);
  requestsFor(vm)[0]?.res.writeHead(202).end();
  await until('the acceptance in the log', () =>
    first.output.some((l) => l.includes(`VM ${vm} migration via orchestrator (rule move): accepted`)),
  );
  assert.equal(await first.stop(), 0);
  const second = await s.start();
  await until('the plugin reconnected by itself', () => s.sessions() === 2 && s.client.connected);
  // The decision is handed to the manager right after its verdict is written: before the stop.
  await s.sea(0x11000n);
  assert.equal(await second.stop(), 0);
  assert.deepEqual(migrateRows(second, vm), [{ outcome: 'accepted', detail: 'HTTP 202' }]);
  assert.equal(requestsFor(vm).length, 1);
  assert.ok(
    !second.output.some((l) => l.includes('migration state:')),
    `no warning about the state file:\n${second.output.join('\n')}`,
  );
});

test('stopped while the hook ran: after the restart the VM is asked again under the same key', async (t) => {
  const vm = 'vm-restart-pending';
  const s = setUp(t, vm);
  const first = await s.start();
  await s.client.connect();
  await s.sea(0x20000n);
  await when('the hook request', () => requestsFor(vm).length === 1);
  const key = requestsFor(vm)[0]?.key;
  assert.match(key ?? '', /^[0-9a-f-]{36}$/);
  assert.equal(await first.stop(), 0);
  const second = await s.start();
  await until('the plugin reconnected by itself', () => s.sessions() === 2 && s.client.connected);
  await s.sea(0x21000n);
  await when('the hook asked again', () => requestsFor(vm).length === 2);
  assert.equal(requestsFor(vm)[1]?.key, key, 'the same Idempotency-Key');
  assert.equal(requestsFor(vm)[1]?.raw, requestsFor(vm)[0]?.raw, 'the same body, byte for byte');
  requestsFor(vm)[1]?.res.writeHead(202).end();
  await until('the acceptance in the log', () =>
    second.output.some((l) => l.includes(`VM ${vm} migration via orchestrator (rule move): accepted`)),
  );
  assert.equal(await second.stop(), 0);
  assert.deepEqual(migrateRows(second, vm), [
    { outcome: 'failed', detail: 'daemon stopping' },
    { outcome: 'accepted', detail: 'HTTP 202' },
  ]);
});

test('a state file that is not one: a warning, the daemon runs, the file set aside and a new one written', async (t) => {
  const s = setUp(t, 'vm-restart-garbage');
  const path = join(s.dir, 'state', 'migrations.json');
  mkdirSync(join(s.dir, 'state'), { mode: 0o700 });
  const garbage = '{"version":1,"entries":[{"vm":"x","pid":1,"startTicks":0,"pending":"a\\r\\nX: 1"}]}';
  writeFileSync(path, garbage);
  const d = await s.start();
  await until('the warning', () => d.output.find((l) => l.includes('migration state:')));
  const warning = d.output.find((l) => l.includes('migration state:')) ?? '';
  assert.match(warning, /is not a migration state file/);
  assert.ok(warning.includes(`set aside as ${path}.bad`), warning);
  assert.equal(readFileSync(`${path}.bad`, 'utf8'), garbage);
  await until('the file written over', () => {
    const text = readFileSync(path, 'utf8');
    return text === '{"version":1,"entries":[]}\n' ? text : undefined;
  });
  await s.client.connect();
  await s.sea(0x30000n);
  await when('the hook request', () => requestsFor('vm-restart-garbage').length === 1);
  requestsFor('vm-restart-garbage')[0]?.res.writeHead(202).end();
  assert.equal(await d.stop(), 0);
});
