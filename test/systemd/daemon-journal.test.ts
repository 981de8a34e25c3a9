/**
 * The daemon logging to a real systemd-journald while it handles a simulated fleet:
 * `journalctl -o json` returns exactly one MEMORY_ERROR entry per event, with the SEAWALL_* fields.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageId } from '../../systemd/index.js';
import { simulate } from '../../vmm/simulator.js';
import { removeDir, startDaemon } from '../helpers/daemon.js';
import { journaldRequirements, startJournald } from './journald-fixture.js';
import { requireOrSkip } from './tools.js';

test('one journal entry per event, with the documented MESSAGE_ID and SEAWALL_* fields', async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  const d = await startDaemon({ args: ['--log', 'journal'] });
  t.after(async () => {
    await d.stop();
    removeDir(d.dir);
  });
  const prefix = `jtest-${process.pid}-${Date.now().toString(36)}`;
  const summary = await simulate({ socket: d.socket, vms: 2, vcpus: 2, events: 200, vmPrefix: prefix });
  assert.equal(summary.answered, 200);

  const vms = [`${prefix}-0`, `${prefix}-1`];
  const entriesFor = (vm: string) => journald.query({ MESSAGE_ID: MessageId.MEMORY_ERROR, SEAWALL_VM: vm });
  let entries: Record<string, string>[] = [];
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
    await journald.waitForEntries({ MESSAGE_ID: MessageId.MEMORY_ERROR, SEAWALL_VM: vms[0] as string });
    entries = (await Promise.all(vms.map(entriesFor))).flat();
    if (entries.length >= 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(entries.length, 200, 'exactly one entry per event');
  const seqs = new Set(entries.map((e) => `${e.SEAWALL_VM}/${e.SEAWALL_SESSION}/${e.SEAWALL_SEQ}`));
  assert.equal(seqs.size, 200, 'no event logged twice');
  for (const e of entries) {
    assert.equal(e.SYSLOG_IDENTIFIER, 'seawall');
    assert.equal(e.SEAWALL_EVENT_KIND, 'sea');
    assert.equal(e.SEAWALL_ACTION, 'inject');
    assert.match(e.SEAWALL_ESR ?? '', /^0x92000[04][15]0$/);
    assert.equal(e.SEAWALL_FSC, '0x10');
    assert.equal(e.SEAWALL_EC, '0x24');
    assert.match(e.SEAWALL_GPA ?? '', /^0x[0-9a-f]*000$/);
    assert.match(e.SEAWALL_VCPU ?? '', /^[01]$/);
    assert.ok(e.SEAWALL_RULE && e.SEAWALL_POLICY_VERSION, 'rule and policy version present');
    assert.equal(e.PRIORITY, '4');
    assert.match(e.MESSAGE ?? '', /^memory error \(sea\) on VM jtest-/);
  }
});
