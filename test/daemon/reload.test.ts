/**
 * Reload under load (issue: policies). A fleet runs at full speed while 100 reloads alternate
 * between two valid policies and an invalid one, each by SIGHUP. After each reload completes
 * (RELOADING=1 … READY=1 on a real NOTIFY_SOCKET), a probe event shows which policy is in force:
 * the new one after a valid file, the previous one after an invalid file. Throughout, no fleet
 * event is lost or answered by fallback, and every verdict is one that a whole policy produces.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ACTION } from '../../protocol/index.js';
import { PluginClient } from '../../vmm/plugin-client.js';
import { seaExit } from '../../vmm/sample-events.js';
import { DEFAULT_CAPS, simulate } from '../../vmm/simulator.js';
import { metricSum, PATIENT_DEADLINE_MS, removeDir, scrape, startDaemon } from '../helpers/daemon.js';
import { requireTool } from '../helpers/tools.js';
import { within } from '../helpers/wait.js';
import { startNotifyReceiver } from '../systemd/notify-fixture.js';

const policy = (name: string, action: string) =>
  ['version: 1', `name: ${name}`, 'rules: []', 'default:', `  action: ${action}`, ''].join('\n');
const INJECT = policy('inject-all', '{ type: inject, abort: data }');
const RECORD = policy('record-only', '{ type: none }');
const INVALID = 'version: 1\nname: broken\nrules:\n  - name: x\n    match: { kind: banana }\n';

test('100 reloads under load: atomic, last good policy kept on error, nothing lost', async (t) => {
  if (!requireTool(t, 'python3', 'python3')) return;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-reload-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, INJECT);
  const rx = await startNotifyReceiver();
  t.after(() => rx.close());
  const d = await startDaemon({ args: ['--policy', file], env: rx.env });
  const probe = new PluginClient({
    socket: d.socket,
    vmId: 'probe',
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  t.after(async () => {
    await probe.close();
    await d.kill();
    removeDir(d.dir);
    removeDir(dir);
  });
  await probe.connect();
  const sea = seaExit({ gpa: 0x3000n });

  let finish!: () => void;
  const stop = new Promise<void>((r) => {
    finish = r;
  });
  const fleet = simulate({
    socket: d.socket,
    vms: 4,
    vcpus: 4,
    durationMs: 600_000,
    deadlineMs: PATIENT_DEADLINE_MS,
    until: stop,
  });

  let expected: number = ACTION.INJECT;
  let valid = 0;
  let invalid = 0;
  try {
    await rx.waitFor((m) => m.fields.READY === '1');
    for (let i = 0; i < 100; i++) {
      const kind = i % 3;
      writeFileSync(file, kind === 0 ? RECORD : kind === 1 ? INJECT : INVALID);
      if (kind === 2) invalid++;
      else {
        valid++;
        expected = kind === 0 ? ACTION.RESUME : ACTION.INJECT;
      }
      const from = rx.messages.length;
      d.proc.kill('SIGHUP');
      const reloading = await rx.waitFor((m) => m.fields.RELOADING === '1', { from });
      assert.match(reloading.fields.MONOTONIC_USEC ?? '', /^\d+$/);
      await rx.waitFor((m) => m.fields.READY === '1', { from: reloading.index });
      const out = await probe.handleExit(sea);
      assert.equal(out.source, 'daemon');
      assert.equal(
        out.verdict.action,
        expected,
        `reload ${i} (${['valid record-only', 'valid inject', 'invalid'][kind]})`,
      );
    }
  } finally {
    finish();
  }
  const summary = await within('the fleet to stop', fleet);
  assert.ok(summary.sent > 100);
  assert.equal(summary.answered, summary.sent, 'every fleet event answered by the daemon');
  assert.equal(summary.fallbacks, 0);
  // Each verdict is what one whole policy answers: inject or resume, nothing else.
  assert.deepEqual(
    Object.keys(summary.verdicts).filter((k) => k !== 'inject' && k !== 'resume'),
    [],
  );
  const text = await scrape(d.metricsUrl as string);
  assert.equal(
    metricSum(text, 'seawall_policy_reloads_total', (l) => l.includes('result="failure"')),
    invalid,
  );
  // The initial load counts as one success.
  assert.equal(
    metricSum(text, 'seawall_policy_reloads_total', (l) => l.includes('result="success"')),
    valid + 1,
  );
  assert.equal(await d.stop(), 0);
});
