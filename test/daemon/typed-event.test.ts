/**
 * The time an event counts at (daemon/typed-event.ts): a live event's is the daemon's; a replay's
 * is the plugin's `time_ns`, held within [its session's open − REPLAY_MAX_AGE_MS, now], while the
 * message keeps the plugin's own time for the record.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sessionInfo } from '../../daemon/session-info.js';
import { REPLAY_MAX_AGE_MS, typeEvent } from '../../daemon/typed-event.js';
import { ACTION, CAP } from '../../protocol/index.js';
import { seaEvent } from '../../vmm/sample-events.js';

const OPENED = Date.parse('2026-01-01T00:00:00Z');
const NOW = OPENED + 1_000;
const session = sessionInfo(
  1n,
  {
    type: 'hello',
    version: 1,
    minor: 1,
    caps: CAP.SEA_TO_USER | CAP.INJECT_EXT_DABT | CAP.RAS,
    vmmPid: 1,
    vcpuCount: 1,
    extAbtEsrCap: 0,
    vmId: 'vm',
    labels: {},
  },
  { pid: 1, uid: 0, gid: 0 },
  OPENED,
);
const ns = (ms: number) => BigInt(ms) * 1_000_000n;
const timeOf = (timeNs: bigint, replay: boolean) => {
  const msg = seaEvent(1, { timeNs, replay, fallbackAction: replay ? ACTION.INJECT : 0 });
  const { event } = typeEvent(msg, session, NOW);
  assert.equal(msg.timeNs, timeNs, 'the plugin time is kept for the record');
  return event.timeMs;
};

test("a live event counts at the daemon's time, whatever time_ns says", () => {
  assert.equal(timeOf(1n, false), NOW);
  assert.equal(timeOf(ns(NOW + 86_400_000), false), NOW);
});

test('a replay counts at its own time when that is plausible: before now, after the bound', () => {
  assert.equal(timeOf(ns(OPENED - 2 * 3_600_000), true), OPENED - 2 * 3_600_000);
  assert.equal(timeOf(ns(OPENED - REPLAY_MAX_AGE_MS), true), OPENED - REPLAY_MAX_AGE_MS);
  assert.equal(timeOf(ns(NOW), true), NOW);
});

test('a replay dated before the bound (1970, or 0) counts at the bound; one dated after now, now', () => {
  assert.equal(timeOf(1n, true), OPENED - REPLAY_MAX_AGE_MS);
  assert.equal(timeOf(0n, true), OPENED - REPLAY_MAX_AGE_MS);
  assert.equal(timeOf(ns(OPENED - REPLAY_MAX_AGE_MS - 1), true), OPENED - REPLAY_MAX_AGE_MS);
  assert.equal(timeOf(ns(NOW + 1), true), NOW);
  assert.equal(timeOf(0xffff_ffff_ffff_ffffn, true), NOW);
});
