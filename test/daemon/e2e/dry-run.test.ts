/**
 * A policy tried in dry-run, read the way docs/policies.md tells an operator to: what its rule
 * would have done — a kill and its grace — is in the event's log entry (`--log-events each`, on
 * stderr here) and in `seawall events`, table and JSON, while the guest got the built-in answer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ACTION, VERDICT_FLAG } from '../../../protocol/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { seaEvent } from '../../../vmm/sample-events.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { RawClient } from '../../helpers/raw-client.js';
import { until } from '../../helpers/wait.js';
import { cliJson, runCli } from './run-cli.js';

// The first rule of policies/examples/dry-run.yaml, without the hook the rest of it needs.
const POLICY = `version: 1
name: dry-run-trial
dryRun: true
rules:
  - name: uncontainable-kill
    match:
      severity: uc
    action: { type: kill, grace: 5s }
default:
  action: { type: inject, abort: data, set: uer, fnv: true }
`;

/** A data abort whose ISS.SET says uncontainable (SET = 0b10, ISS[12:11]). */
const UC_ESR = 0x92001410n;

test("a dry-run policy's would-be kill is in the event's log line and in seawall events", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-dry-'));
  let d: RunningDaemon | null = null;
  let vm: RawClient | null = null;
  t.after(async () => {
    vm?.destroy();
    await d?.kill();
    removeDir(dir);
  });
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, POLICY);
  d = await startDaemon({ dir, args: ['--policy', file, '--log-events', 'each'], metrics: false });
  vm = await RawClient.open(d.socket);
  await vm.hello('trial-vm');
  vm.send(seaEvent(1, { esr: UC_ESR, gpa: 0x4000n }));
  const verdict = await vm.waitFor('verdict', (v) => v.seq === 1);
  assert.equal(verdict.action, ACTION.INJECT, 'the guest gets the built-in answer');
  assert.ok(verdict.flags & VERDICT_FLAG.DRY_RUN);

  const daemon = d;
  const line = await until(
    "the event's log line",
    () => daemon.output.find((l) => l.includes('SEAWALL_VM=trial-vm') && l.includes('SEAWALL_SEQ=1')),
    { state: () => daemon.output.slice(-10).join('\n') },
  );
  assert.match(line, /SEAWALL_ACTION=inject\b/);
  assert.match(line, /SEAWALL_OUTCOME=dry_run\b/);
  assert.match(line, /SEAWALL_WOULD_HAVE="kill \(grace 5000 ms\)"/);
  assert.match(line, /\[rule uncontainable-kill\]; dry run, would have: kill \(grace 5000 ms\)/);

  const [event] = await cliJson<StoredEvent[]>(d.controlSocket, ['events', '--vm', 'trial-vm']);
  assert.ok(event);
  assert.equal(event.severity, 'uc');
  assert.equal(event.action, 'inject');
  assert.equal(event.rule, 'uncontainable-kill');
  assert.deepEqual(event.wouldHave, { code: 'kill', detail: 'kill (grace 5000 ms)' });
  assert.deepEqual(event.downgrades, [], 'a dry run is not a downgrade');

  const table = await runCli(['events', '--vm', 'trial-vm', '--control-socket', d.controlSocket]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /uncontainable-kill {2}inject, dry run, would have: kill \(grace 5000 ms\)$/m);
});
