/**
 * The daemon logging to a real systemd-journald while it handles a simulated fleet:
 * `journalctl -o json` returns exactly one MEMORY_ERROR entry per event, with the SEAWALL_* fields,
 * and every entry with a MESSAGE_ID arrives with the fields its catalog entry may name. Under a
 * dry-run policy the entry holds what the rule would have done (SEAWALL_WOULD_HAVE, the message).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MessageFields, MessageId } from '../../systemd/index.js';
import type { PluginClient } from '../../vmm/plugin-client.js';
import { seaEvent } from '../../vmm/sample-events.js';
import { simulate } from '../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';
import { journaldRequirements, startJournald } from './journald-fixture.js';
import { requireOrSkip } from './tools.js';

test('one journal entry per event, with the documented MESSAGE_ID and SEAWALL_* fields', async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  // Entries from before the start are another process's that had the same PID.
  const sinceUs = Date.now() * 1000;
  const d = await startDaemon({ args: ['--log', 'journal'] });
  t.after(async () => {
    await d.kill();
    removeDir(d.dir);
  });
  const prefix = `jtest-${process.pid}-${Date.now().toString(36)}`;
  const sent = new Map<string, PluginClient>();
  const summary = await simulate({
    socket: d.socket,
    vms: 2,
    vcpus: 2,
    events: 200,
    vmPrefix: prefix,
    deadlineMs: PATIENT_DEADLINE_MS,
    onClient: (c) => sent.set(c.opts.vmId, c),
  });
  assert.equal(summary.answered, 200);

  // Each VM's entries once journald has written as many as the VM sent events; the count is
  // checked again below, so an extra entry is caught too.
  const entries: Record<string, string>[] = [];
  for (const [vm, c] of sent) {
    const match = { MESSAGE_ID: MessageId.MEMORY_ERROR, SEAWALL_VM: vm };
    entries.push(...(await journald.waitForEntries(match, { count: c.stats.sent })));
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

  // What systemd/message-fields.ts promises the catalog is what journald stored, for each entry of
  // this daemon that has a MESSAGE_ID (start, events, and whatever else it logged meanwhile).
  const carried: Readonly<Record<string, readonly string[]>> = MessageFields;
  const ids = new Set<string>();
  for (const e of await journald.query({ _PID: String(d.pid) }, sinceUs)) {
    if (e.MESSAGE_ID === undefined) continue;
    ids.add(e.MESSAGE_ID);
    assert.ok(carried[e.MESSAGE_ID], `${e.MESSAGE_ID} is a seawall MESSAGE_ID`);
    for (const field of carried[e.MESSAGE_ID]!)
      assert.ok(e[field], `the ${e.MESSAGE_ID} entry "${e.MESSAGE}" carries ${field}`);
  }
  assert.ok(ids.has(MessageId.DAEMON_STARTED) && ids.has(MessageId.MEMORY_ERROR), [...ids].join(' '));
});

const DRY_RUN = `version: 1
name: dry-run-trial
dryRun: true
rules:
  - name: uncontainable-kill
    match: { severity: uc }
    action: { type: kill, grace: 5s }
default:
  action: { type: inject, abort: data }
`;

test("a dry-run policy's entry in the journal holds what its rule would have done", async (t) => {
  if (!requireOrSkip(t, journaldRequirements())) return;
  const journald = await startJournald();
  t.after(() => journald.stop());
  const dir = mkdtempSync(join(tmpdir(), 'seawall-dry-journal-'));
  const held: { daemon?: RunningDaemon; client?: RawClient } = {};
  t.after(async () => {
    held.client?.destroy();
    await held.daemon?.kill();
    removeDir(dir);
  });
  writeFileSync(join(dir, 'policy.yaml'), DRY_RUN);
  const policyArgs = ['--policy', join(dir, 'policy.yaml')];
  const d = await startDaemon({ dir, args: ['--log', 'journal', ...policyArgs] });
  held.daemon = d;
  const vm = `jdry-${process.pid}-${Date.now().toString(36)}`;
  const client = await RawClient.open(d.socket);
  held.client = client;
  await client.hello(vm);
  // ISS.SET = 0b10: uncontainable.
  client.send(seaEvent(1, { esr: 0x92001410n }));
  await client.waitFor('verdict', (v) => v.seq === 1);
  const [entry] = await journald.waitForEntries({ MESSAGE_ID: MessageId.MEMORY_ERROR, SEAWALL_VM: vm });
  assert.ok(entry);
  assert.equal(entry.SEAWALL_ACTION, 'inject');
  assert.equal(entry.SEAWALL_RULE, 'uncontainable-kill');
  assert.equal(entry.SEAWALL_OUTCOME, 'dry_run');
  assert.equal(entry.SEAWALL_WOULD_HAVE, 'kill (grace 5000 ms)');
  assert.match(
    entry.MESSAGE ?? '',
    /\[rule uncontainable-kill\]; dry run, would have: kill \(grace 5000 ms\)$/,
  );
});
