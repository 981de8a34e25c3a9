/**
 * "Why was this VM killed?" when a migration was asked for first: the tiered example policy
 * migrates a gold VM through an exec hook that refuses (exit 3), and the rule's onFailure kills it.
 * `seawall why` shows the refused migration and, after it, that kill; `seawall vms` shows the kill
 * as the VM's last action.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { WhyResult } from '../../../control/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { runCli } from './run-cli.js';

const POLICY = new URL('../../../policies/examples/tiered.yaml', import.meta.url).pathname;

test("a refused migration: why shows the kill the rule's onFailure started, vms shows it last", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-why-migrate-'));
  let daemon: RunningDaemon | null = null;
  t.after(async () => {
    await daemon?.kill();
    removeDir(dir);
  });
  const config = join(dir, 'seawall.yaml');
  writeFileSync(
    config,
    'actions:\n  hooks:\n    evacuate: { type: exec, argv: [/bin/sh, -c, "exit 3"], timeoutMs: 10000 }\n',
  );
  const d = await startDaemon({ dir, args: ['--config', config, '--policy', POLICY] });
  daemon = d;
  const env = { ...process.env, SEAWALL_CONTROL_SOCKET: d.controlSocket, SEAWALL_SOCKET: d.socket };
  const sim = await runCli(
    [
      'simulate',
      '--vms',
      '1',
      '--vcpus',
      '1',
      '--events',
      '2',
      '--label',
      'tier=gold',
      '--vm-prefix',
      'gold',
    ],
    { env },
  );
  assert.equal(sim.signal, null, 'simulate was not killed');

  // The hook refuses at once; the kill that follows ends when the simulated VMM exits on KILL.
  let why: WhyResult | null = null;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const r = await runCli(['why', 'gold-0', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    why = JSON.parse(r.stdout) as WhyResult;
    const then = why.entries[0]?.outcome?.onFailureKill;
    if (then && then.outcome !== 'requested') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(why);
  const outcome = why.entries[0]?.outcome;
  assert.equal(why.entries[0]?.event.rule, 'gold-migrate');
  assert.equal(outcome?.outcome, 'refused', JSON.stringify(why));
  assert.equal(outcome?.onFailureKill?.action, 'kill', JSON.stringify(why));
  assert.equal(outcome?.onFailureKill?.rule, 'gold-migrate');
  const text = await runCli(['why', 'gold-0'], { env });
  assert.match(text.stdout, /outcome {2}migrate refused by the orchestrator/);
  assert.match(
    text.stdout,
    /\n {11}then: kill \(the rule's onFailure, the migration refused\) requested at /,
  );
  const vms = await runCli(['vms'], { env });
  assert.match(vms.stdout, /^gold-0 +\S+ +\d+ +\d+ +kill /m, vms.stdout);
});
