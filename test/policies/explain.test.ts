/**
 * `explain` predicts the abort the daemon's verdict makes the guest take: for an emulated abort,
 * the ESR (and its FnV) must be the one buildVerdict sends, whether or not the event names a gva.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildVerdict, exitHasVa } from '../../daemon/verdict.js';
import { emulatedGuestEsr } from '../../kvm/index.js';
import type { HostCapabilities } from '../../policies/index.js';
import { policyFrom, seaEvent } from './fixtures.js';

/** The reviewer's policy: a chosen ISS the merged ABI cannot carry, so the VMM emulates it. */
const EMULATED = `version: 1
name: emu
default:
  action: { type: inject, abort: data, set: uer }
  onUnsupported: [emulate, downgrade]
`;
const IABT = `version: 1
name: emu-iabt
default:
  action: { type: inject, abort: instruction, ea: true }
  onUnsupported: [emulate, downgrade]
`;
const HOST: HostCapabilities = { abi: 'merged', ras: true, emulateAbort: true };

test('a SEA with FnV clear and no gva: explain gives the ESR the verdict carries, FnV clear, FAR unknown', () => {
  const event = seaEvent({ esr: '0x92000010' });
  const x = policyFrom(EMULATED).explain(event, HOST);
  const built = buildVerdict(1, x.decision, 'sea', HOST, true, exitHasVa('sea', 0x92000010n));
  assert.equal(built.verdict.esr, 0x92000010n, 'the daemon sends FnV clear');
  assert.deepEqual(x.guest, { vectorOffset: 0x200, esr: 0x96000010n, esrOnLinux61: 0x96000010n, far: null });
});

test('explain and buildVerdict agree on the emulated ESR for every event kind, with and without gva', () => {
  const events = [
    { kind: 'sea', esr: '0x92000010' },
    { kind: 'sea', esr: '0x92000010', gva: '0x81234BAD' },
    { kind: 'sea', esr: '0x92000410' },
    { kind: 'sea', esr: '0x92000410', gva: '0x81234BAD' },
    { kind: 'nisv', esr: '0x5', gva: '0x81234BAD' },
    { kind: 'mmio', esr: undefined, gva: '0x81234BAD' },
    { kind: 'sigbus', esr: undefined, gpa: undefined, sigbusCode: 'BUS_MCEERR_AR' },
  ];
  for (const yaml of [EMULATED, IABT]) {
    const policy = policyFrom(yaml);
    for (const over of events) {
      const event = seaEvent(over);
      const x = policy.explain(event, HOST);
      const esr = event.kind === 'sea' ? (event.esr?.raw ?? null) : null;
      const va = exitHasVa(event.kind, esr);
      const built = buildVerdict(1, x.decision, event.kind, HOST, true, va);
      const label = `${policy.name} ${JSON.stringify(over)}`;
      assert.equal(x.guest?.esr, emulatedGuestEsr(built.verdict.esr, 1), label);
      // FAR_EL1: the exit's guest VA when FnV is clear (null when the event gives none), else 0.
      assert.equal(x.guest?.far, va ? (event.gva ?? null) : 0n, label);
    }
  }
});
