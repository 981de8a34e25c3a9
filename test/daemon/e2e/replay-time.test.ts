/**
 * A REPLAY event carries the time its plugin chose, and any connected peer may send one. With a
 * host-scoped rate rule, a victim VM's third error within the hour is killed whatever another VM
 * replays in between: replays dated 1970 do not push the victim's events out of the host window
 * (the rings keep the latest times, not the latest arrivals), and replays dated a year ahead are
 * counted at the time the daemon took them, not after every real event (daemon/typed-event.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { ACTION, encodeMessage } from '../../../protocol/index.js';
import type { StoredEvent } from '../../../store/index.js';
import { seaFrame } from '../../../vmm/sample-events.js';
import { removeDir, startDaemon } from '../../helpers/daemon.js';
import { RawClient } from '../../helpers/raw-client.js';
import { cliJson } from './run-cli.js';

// The kill's grace outlasts the test: the connected process is this one.
const POLICY = `version: 1
name: host-rate
rules:
  - name: host-failing
    match: { kind: [sea], rate: { threshold: 3 / 1h, scope: host } }
    action: { type: kill, grace: 1h }
default:
  action: { type: inject, abort: data }
`;
const HELLO = { minor: 1 } as const;
const YEAR_NS = 365n * 86_400_000_000_000n;
const { INJECT, KILL } = ACTION;

/** The victim's four live errors, with another VM's three replays (and a HEARTBEAT) after the second. */
async function victimAround(t: TestContext, replayTimesNs: readonly bigint[]) {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-replay-time-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const d = await startDaemon({ dir, args: ['--policy', policy], metrics: false });
  const clients: RawClient[] = [];
  t.after(async () => {
    for (const c of clients) c.destroy();
    await d.kill();
    removeDir(dir);
  });
  const victim = await RawClient.open(d.socket);
  clients.push(victim);
  await victim.hello('victim', HELLO);
  const actions: number[] = [];
  const live = async (seq: number) => {
    victim.send(seaFrame(seq, { timeNs: BigInt(Date.now()) * 1_000_000n, gpa: BigInt(seq) << 20n }));
    actions.push((await victim.waitFor('verdict', (v) => v.seq === seq)).action);
  };
  await live(1);
  await live(2);
  const other = await RawClient.open(d.socket);
  clients.push(other);
  const before = Date.now();
  await other.hello('other', HELLO);
  other.send(
    Buffer.concat([
      ...replayTimesNs.map((timeNs, i) => seaFrame(i + 1, { replay: true, fallbackAction: INJECT, timeNs })),
      encodeMessage({ type: 'heartbeat', nonce: 9n }),
    ]),
  );
  // The echo comes once everything before it is recorded.
  await other.waitFor('heartbeat');
  const after = Date.now();
  await live(3);
  await live(4);
  const replays = await cliJson<StoredEvent[]>(d.controlSocket, ['events', '--vm', 'other']);
  return { actions, replays, before, after };
}

test("another VM's replays dated 1970 do not push the victim's errors out of a host window", async (t) => {
  const r = await victimAround(t, [1n, 2n, 3n]);
  assert.deepEqual(r.actions, [INJECT, INJECT, KILL, KILL]);
  // Recorded, at the earliest time a replay may have: 7 days before its session opened.
  assert.equal(r.replays.length, 3);
  for (const e of r.replays) {
    assert.ok(e.replay);
    assert.ok(e.timeMs >= r.before - 7 * 86_400_000 && e.timeMs <= r.after - 7 * 86_400_000, `${e.timeMs}`);
  }
});

test("another VM's replays dated a year ahead count when they arrived, not after the victim's errors", async (t) => {
  const ahead = BigInt(Date.now()) * 1_000_000n + YEAR_NS;
  const r = await victimAround(t, [ahead, ahead + 1n, ahead + 2n]);
  // The three replays count now: the victim's third error is the host's sixth within the hour.
  assert.deepEqual(r.actions, [INJECT, INJECT, KILL, KILL]);
  assert.equal(r.replays.length, 3);
  for (const e of r.replays) assert.ok(e.timeMs >= r.before && e.timeMs <= r.after, `${e.timeMs}`);
});
