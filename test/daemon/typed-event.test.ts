/**
 * The time an event counts at (daemon/typed-event.ts): a live event's is the daemon's; a replay's
 * is the plugin's `time_ns`, held within [its session's open − REPLAY_MAX_AGE_MS, now], while the
 * message keeps the plugin's own time for the record. And each SEA event's ESR is decoded for it,
 * though a storm's events share the decoding of the syndrome they repeat.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sessionInfo } from '../../daemon/session-info.js';
import { REPLAY_MAX_AGE_MS, typeEvent } from '../../daemon/typed-event.js';
import { decodeEsr, nonConformingSeaEsrBits } from '../../kvm/index.js';
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

test('each SEA event gets its own ESR decoded, and its own non-conforming bits, whatever came before', () => {
  const conforming = 0x9200_0410n; // DABT_LOW, SEA
  const iabt = 0x8200_0410n; // IABT_LOW, SEA
  const withIsv = conforming | (1n << 24n); // ISV set: not what a conforming kernel sends
  for (const raw of [conforming, conforming, iabt, withIsv, withIsv, conforming]) {
    const { event, nonConforming } = typeEvent(seaEvent(1, { esr: raw }), session, NOW);
    assert.deepEqual(event.esr, decodeEsr(raw), `0x${raw.toString(16)}`);
    assert.deepEqual(nonConforming, nonConformingSeaEsrBits(raw), `0x${raw.toString(16)}`);
    // Events of a storm share one decoding: nothing may change it under another event.
    assert.ok(
      Object.isFrozen(event.esr) && Object.isFrozen(event.esr?.abort) && Object.isFrozen(nonConforming),
    );
  }
});
