/**
 * Rate windows survive a restart. With a rule that fires on `rate: 3 / 10m` per VM, two errors of
 * a VM before a graceful restart and one after it make three within the window: the third is
 * decided by the rate rule, because the daemon rebuilds its rate state from the stored events at
 * start, over the policy's longest window (a 30-day one too). The control shows the rule is what
 * it seems: on a fresh state directory the first error
 * does not fire, and the third does.
 *
 * The rule's action is `none` (verdict RESUME) against a default of `inject` (verdict INJECT).
 * `kill` would be as distinguishable, but a kill verdict is enforced on the VMM's pid — here the
 * test runner itself, the peer of the plugin connection.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import Database from 'better-sqlite3';
import { ACTION } from '../../../protocol/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { PluginClient, type VerdictOutcome } from '../../../vmm/plugin-client.js';
import { seaExit } from '../../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { cliJson } from './run-cli.js';

const POLICY = `version: 1
name: burst-watch
rules:
  - name: burst
    description: Three errors within ten minutes in one VM.
    match:
      kind: [sea, nisv, mmio]
      rate: { threshold: 3 / 10m, scope: vm }
    action: { type: none }
default:
  action: { type: inject, abort: data }
`;

interface Harness {
  dir: string;
  policy: string;
  start(): Promise<RunningDaemon>;
}

/** A private directory with the policy file; every daemon started here is killed at the end. */
function harness(t: TestContext, text = POLICY): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-rate-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, text);
  const daemons: RunningDaemon[] = [];
  const clients: PluginClient[] = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const d of daemons) await d.kill();
    removeDir(dir);
  });
  return {
    dir,
    policy,
    async start() {
      const d = await startDaemon({ dir, args: ['--policy', policy], metrics: false });
      daemons.push(d);
      return d;
    },
  };
}

/** Connects as `vmId`, reports `n` SEA errors on distinct pages one after another, disconnects. */
async function errors(d: RunningDaemon, vmId: string, n: number): Promise<VerdictOutcome[]> {
  const c = new PluginClient({
    socket: d.socket,
    vmId,
    vcpuCount: 1,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await c.connect();
  const out: VerdictOutcome[] = [];
  try {
    for (let i = 0; i < n; i++) {
      out.push(await c.handleExit(seaExit({ gpa: BigInt(0x10 + out.length) << 12n })));
    }
  } finally {
    await c.close();
  }
  for (const o of out) assert.equal(o.source, 'daemon');
  return out;
}

const actions = (out: VerdictOutcome[]) => out.map((o) => o.verdict.action);

test('two errors, a graceful restart, a third: the 3 / 10m rate rule fires on the third', async (t) => {
  const h = harness(t);
  const first = await h.start();
  assert.deepEqual(actions(await errors(first, 'vm-a', 2)), [ACTION.INJECT, ACTION.INJECT]);
  assert.equal(await first.stop(), 0);

  const second = await h.start();
  assert.deepEqual(actions(await errors(second, 'vm-a', 1)), [ACTION.RESUME], 'the window held two errors');
  // The window is per VM: another VM's first error after the restart does not fire.
  assert.deepEqual(actions(await errors(second, 'vm-b', 1)), [ACTION.INJECT]);

  const stored = await cliJson<StoredEvent[]>(second.controlSocket, ['events', '--vm', 'vm-a']);
  assert.deepEqual(
    stored.map((e) => [e.rule, e.action]),
    [
      ['default', 'inject'],
      ['default', 'inject'],
      ['burst', 'none'],
    ],
  );
  assert.equal(new Set(stored.map((e) => e.bootId)).size, 2, 'two daemon runs');
});

test('control: on a fresh state directory the first error does not fire, the third does', async (t) => {
  const h = harness(t);
  const d = await h.start();
  assert.deepEqual(actions(await errors(d, 'vm-a', 1)), [ACTION.INJECT]);
  assert.deepEqual(actions(await errors(d, 'vm-a', 2)), [ACTION.INJECT, ACTION.RESUME]);
});

/** Moves every stored event `days` back in time, the daemon stopped. */
function ageStore(d: RunningDaemon, days: number): void {
  const db = new Database(join(d.stateDir, 'events.sqlite'));
  try {
    db.prepare('UPDATE event_rows SET time_ms = time_ms - ? * 86400000').run(days);
  } finally {
    db.close();
  }
}

test('a window longer than the week of repeat-page memory is rebuilt whole: 3 / 30d', async (t) => {
  const h = harness(t, POLICY.replace('3 / 10m', '3 / 30d'));
  const first = await h.start();
  assert.deepEqual(actions(await errors(first, 'vm-a', 2)), [ACTION.INJECT, ACTION.INJECT]);
  assert.equal(await first.stop(), 0);
  // Ten days ago: within the rule's 30 days, past the week the rebuild once stopped at.
  ageStore(first, 10);
  const second = await h.start();
  assert.deepEqual(actions(await errors(second, 'vm-a', 1)), [ACTION.RESUME], 'the window held two errors');
});

test('stored events dated after now are left out of the rebuilt windows', async (t) => {
  const h = harness(t);
  const first = await h.start();
  await errors(first, 'vm-a', 4);
  assert.equal(await first.stop(), 0);
  // As a replay stored before replay times were bounded could be: a year ahead.
  ageStore(first, -365);
  // Kept as the newest times of vm-a's ring, they would fill it: no real error would be kept.
  const second = await h.start();
  assert.deepEqual(actions(await errors(second, 'vm-a', 3)), [ACTION.INJECT, ACTION.INJECT, ACTION.RESUME]);
});
