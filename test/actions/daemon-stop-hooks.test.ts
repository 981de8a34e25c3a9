/**
 * A daemon stopped while a migration hook runs: the hook's processes are killed, the daemon exits
 * at once instead of when the hook would have finished, and the migration's row in the store
 * says how it ended (failed, the daemon stopping) instead of staying `requested`.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { CAP } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { groupAlive } from '../helpers/processes.js';
import { until } from '../helpers/wait.js';

const POLICY = `version: 1
name: stop-hooks
hooks: [slow]
rules:
  - name: mig
    match: { kind: [sea] }
    action: { type: migrate, hook: slow, meanwhile: { abort: data }, onFailure: { type: none } }
default:
  action: { type: inject, abort: data }
`;
/** Far longer than the stop may take: a stop that waited for the hook would fail its deadline. */
const HOOK_SLEEP_S = 120;

const dir = mkdtempSync(join(tmpdir(), 'seawall-stop-hooks-'));
const pidFile = join(dir, 'hook.pid');
let daemon: RunningDaemon | undefined;
let client: PluginClient | undefined;
let hookPid: number | undefined;

after(async () => {
  await client?.close().catch(() => {});
  await daemon?.kill();
  // The hook runs in a process group of its own, not the daemon's.
  if (hookPid !== undefined && groupAlive(hookPid)) process.kill(-hookPid, 'SIGKILL');
  removeDir(dir);
});

test('SIGTERM while an exec hook runs: the hook is killed, the daemon exits, the row says why', async () => {
  const script = join(dir, 'hook.sh');
  writeFileSync(
    script,
    `#!/bin/sh\necho $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}\nexec sleep ${HOOK_SLEEP_S}\n`,
  );
  chmodSync(script, 0o755);
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  writeFileSync(
    join(dir, 'config.yaml'),
    `actions:\n  hooks:\n    slow: { type: exec, argv: [${script}], timeoutMs: 600000 }\n`,
  );
  daemon = await startDaemon({
    dir,
    metrics: false,
    args: ['--config', join(dir, 'config.yaml'), '--policy', join(dir, 'policy.yaml')],
  });
  client = new PluginClient({
    socket: daemon.socket,
    vmId: 'vm-mig',
    vcpuCount: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    deadlineMs: PATIENT_DEADLINE_MS,
    reconnect: { initialMs: 3_600_000, maxMs: 3_600_000 },
  });
  await client.connect();
  await client.handleExit({ type: 'sea', vcpu: 0, kvmFlags: 1n, esr: 0x92000010n, gva: 0n, gpa: 0x10000n });
  hookPid = await until("the hook's pid file", () => {
    try {
      return Number(readFileSync(pidFile, 'utf8'));
    } catch {
      return undefined;
    }
  });
  const pid = hookPid;
  const t0 = performance.now();
  const code = await daemon.stop();
  const ms = performance.now() - t0;
  assert.equal(code, 0);
  assert.ok(ms < (HOOK_SLEEP_S * 1000) / 4, `the daemon exited ${Math.round(ms)} ms after SIGTERM`);
  await until(`the hook's process group ${pid} gone`, () => !groupAlive(pid));
  const db = new Database(join(daemon.stateDir, 'events.sqlite'), { readonly: true });
  try {
    const rows = db
      .prepare("SELECT outcome, detail FROM actions WHERE vm = 'vm-mig' AND action = 'migrate'")
      .all();
    assert.deepEqual(rows, [{ outcome: 'failed', detail: 'daemon stopping' }]);
  } finally {
    db.close();
  }
});
