/**
 * The operator's commands against a running daemon, through the compiled CLI on its control
 * socket: `seawall events` filters by VM, by age (`--since`) and count (`--limit`), and refuses
 * bad arguments with exit 2 and a message that names the argument; `seawall status` shows the open
 * sessions and the counts; `seawall reload` answers 0 with the new version for a valid policy
 * file and 1 with the errors for an invalid one, which leaves the old policy in force.
 *
 * The row older than an hour is made through the protocol, not by editing the file: a replayed
 * event keeps the time the plugin saw it (daemon/typed-event.ts), so a replay stamped two hours
 * ago is stored two hours old.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StatusResult } from '../../../control/index.js';
import { ACTION, type EventMsg } from '../../../protocol/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { PluginClient, type VerdictOutcome } from '../../../vmm/plugin-client.js';
import { seaEvent, seaExit } from '../../../vmm/sample-events.js';
import { DEFAULT_CAPS } from '../../../vmm/simulator.js';
import { PATIENT_DEADLINE_MS, type RunningDaemon, removeDir, startDaemon } from '../../helpers/daemon.js';
import { RawClient } from '../../helpers/raw-client.js';
import { cliJson, runCli } from './run-cli.js';

const policy = (name: string, action: string) =>
  ['version: 1', `name: ${name}`, 'rules: []', 'default:', `  action: ${action}`, ''].join('\n');
const INJECT = policy('cli-inject', '{ type: inject, abort: data }');
const RECORD = policy('cli-record', '{ type: none }');
const INVALID = 'version: 1\nname: broken\nrules:\n  - name: x\n    match: { kind: banana }\n';

const HOUR_MS = 3_600_000;

function sea(seq: number, gpa: bigint, timeMs: number, replay = false): EventMsg {
  return seaEvent(seq, {
    timeNs: BigInt(timeMs) * 1_000_000n,
    replay,
    fallbackAction: replay ? ACTION.INJECT : 0,
    gpa,
  });
}

test('events, status and reload through the CLI on a running daemon', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-cli-'));
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, INJECT);
  let d: RunningDaemon | null = null;
  let alpha: RawClient | null = null;
  let beta: PluginClient | null = null;
  t.after(async () => {
    alpha?.destroy();
    await beta?.close();
    await d?.kill();
    removeDir(dir);
  });
  d = await startDaemon({ dir, args: ['--policy', file], metrics: false });
  const ctl = d.controlSocket;

  // alpha: one fallback event from two hours ago reported as a replay, then three live ones.
  alpha = await RawClient.open(d.socket);
  await alpha.hello('alpha');
  const now = Date.now();
  alpha.send(sea(1, 0x1000n, now - 2 * HOUR_MS, true));
  for (const seq of [2, 3, 4]) alpha.send(sea(seq, BigInt(seq) << 12n, now));
  // Verdicts are written after their batch is stored; the replay went in the same batch or before.
  await alpha.waitFor('verdict', (v) => v.seq === 4);
  beta = new PluginClient({
    socket: d.socket,
    vmId: 'beta',
    vcpuCount: 2,
    caps: DEFAULT_CAPS,
    deadlineMs: PATIENT_DEADLINE_MS,
  });
  await beta.connect();
  for (let i = 0; i < 2; i++) {
    const out: VerdictOutcome = await beta.handleExit(seaExit({ vcpu: i, gpa: 0x9000n }));
    assert.equal(out.source, 'daemon');
    assert.equal(out.verdict.action, ACTION.INJECT);
  }

  const all = await cliJson<StoredEvent[]>(ctl, ['events']);
  assert.equal(all.length, 6);
  const ids = (vm: string, events: StoredEvent[] = all) => events.filter((e) => e.vm === vm).map((e) => e.id);
  const alphaAll = await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'alpha']);
  assert.deepEqual(
    alphaAll.map((e) => [e.seq, e.replay]),
    [
      [1, true],
      [2, false],
      [3, false],
      [4, false],
    ],
    'oldest first, the replay at its own (old) time',
  );
  assert.ok((alphaAll[0] as StoredEvent).timeMs <= now - 2 * HOUR_MS + 1);

  const alphaHour = await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'alpha', '--since', '1h']);
  assert.equal(alphaHour.length, 3, '--since 1h leaves out the event from two hours ago');
  assert.deepEqual(
    alphaHour.map((e) => e.seq),
    [2, 3, 4],
  );
  assert.deepEqual(
    alphaHour.map((e) => e.id),
    ids('alpha').slice(1),
  );
  assert.ok(alphaHour.every((e) => e.vm === 'alpha'));
  const betaHour = await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'beta', '--since', '1h']);
  assert.deepEqual(
    betaHour.map((e) => e.id),
    ids('beta'),
  );
  assert.equal(betaHour.length, 2);
  const iso = new Date(now - 3 * HOUR_MS).toISOString();
  assert.equal((await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'alpha', '--since', iso])).length, 4);
  assert.deepEqual(
    (await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'alpha', '--limit', '2'])).map((e) => e.seq),
    [3, 4],
    '--limit keeps the newest, oldest first',
  );
  assert.deepEqual(await cliJson<StoredEvent[]>(ctl, ['events', '--vm', 'nobody']), []);

  // Bad arguments: exit 2, nothing on stdout, a message naming what is wrong.
  const bad: [string[], RegExp][] = [
    [
      ['--since', 'banana'],
      /--since <when>' argument 'banana' is invalid\. neither a duration .* nor an ISO time/,
    ],
    [['--limit', '-3'], /--limit <n>' argument '-3' is invalid\. not a whole number from 1 to 10000/],
    [['--limit=-3'], /--limit <n>' argument '-3' is invalid\. not a whole number from 1 to 10000/],
    [['--limit', '0'], /--limit <n>' argument '0' is invalid\. not a whole number/],
    [['--bogus'], /unknown option '--bogus'/],
  ];
  for (const [args, message] of bad) {
    const r = await runCli(['events', ...args, '--control-socket', ctl]);
    assert.equal(r.code, 2, `events ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^seawall events: /);
    assert.match(r.stderr, message);
  }

  const status = await cliJson<StatusResult>(ctl, ['status']);
  assert.deepEqual(status.sessions.map((s) => [s.vm, s.vcpus]).sort(), [
    ['alpha', 4],
    ['beta', 2],
  ]);
  assert.deepEqual(status.events, { decided: 5, replays: 1 });
  assert.equal(status.store?.events, 6);
  assert.equal(status.store?.replays, 1);
  assert.equal(status.store?.vms, 2);
  assert.equal(status.store?.byAction.inject, 5);
  assert.equal(status.pid, d.pid);
  const firstVersion = status.policy.version;

  // A valid new file: exit 0 with the new version, and the new policy answers.
  writeFileSync(file, RECORD);
  const ok = await runCli(['reload', '--control-socket', ctl]);
  assert.equal(ok.code, 0, ok.stderr);
  const live = /^policy (\S+) is live$/m.exec(ok.stdout);
  assert.ok(live, ok.stdout);
  const secondVersion = live[1] as string;
  assert.notEqual(secondVersion, firstVersion);
  const probe = await beta.handleExit(seaExit({ gpa: 0n }));
  assert.equal(probe.verdict.action, ACTION.RESUME, 'the record-only policy is in force');

  // An invalid file: exit 1 with the errors; the previous version stays.
  writeFileSync(file, INVALID);
  const refused = await runCli(['reload', '--control-socket', ctl]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`policy reload refused; ${secondVersion} is still in force`));
  assert.match(refused.stderr, /rules\[0\]\.match\.kind: expected sea, nisv, mmio or sigbus/);
  const refusedJson = await runCli(['reload', '--control-socket', ctl, '--json']);
  assert.equal(refusedJson.code, 1);
  const r = JSON.parse(refusedJson.stdout) as { ok: boolean; version: string; issues: string[] };
  assert.equal(r.ok, false);
  assert.equal(r.version, secondVersion);
  assert.ok(r.issues.length > 0);
  const after = await cliJson<StatusResult>(ctl, ['status']);
  assert.equal(after.policy.version, secondVersion);
  assert.equal(after.policy.reloads, 1);
  assert.equal(after.policy.failedReloads, 2);
});
