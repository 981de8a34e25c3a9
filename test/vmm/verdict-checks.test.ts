/**
 * The check of an INJECT verdict's image against the HELLO's declared host (docs/protocol.md §5.1):
 * each image the kernel would refuse or misread is refused by name, the images the daemon builds
 * for that host pass, and other actions are not looked at.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeInjection } from '../../kvm/index.js';
import { ACTION, CAP, type EventMsg } from '../../protocol/index.js';
import { DEFAULT_CAPS } from '../../vmm/simulator.js';
import { verdictRefusal } from '../../vmm/verdict-checks.js';

const sea = { type: 'sea', seq: 1 } as EventMsg;
const sigbus = { type: 'sigbus', seq: 1 } as EventMsg;
const POSTED = DEFAULT_CAPS | CAP.EXT_ABT_ESR;

function inject(bytes: Record<number, number>, action: number = ACTION.INJECT) {
  const vcpuEvents = new Uint8Array(64);
  for (const [at, b] of Object.entries(bytes)) vcpuEvents[Number(at)] = b;
  return { seq: 1, action, flags: 0, graceMs: 0, esr: 0n, vcpuEvents };
}

test('images the declared host would refuse or misread are refused, each by its rule', () => {
  const cases: [string, ReturnType<typeof inject>, number, RegExp][] = [
    [
      'a pad byte (posted ext_iabt_pending) under the merged ABI',
      inject({ 2: 1, 3: 1 }),
      DEFAULT_CAPS,
      /byte 3 .*merged/,
    ],
    ['a reserved byte', inject({ 2: 1, 40: 7 }), DEFAULT_CAPS, /byte 40/],
    ['a flag byte other than 1', inject({ 2: 2 }), DEFAULT_CAPS, /byte 2/],
    ['a pad byte of the posted layout', inject({ 2: 1, 6: 1 }), POSTED, /byte 6 .*ext-abt-esr/],
    ['serror_pending', inject({ 0: 1, 2: 1 }), DEFAULT_CAPS, /SError/],
    ['serror_esr alone', inject({ 2: 1, 8: 1 }), DEFAULT_CAPS, /SError/],
    ['neither abort', inject({}), DEFAULT_CAPS, /neither/],
    ['both aborts', inject({ 2: 1, 3: 1 }), POSTED, /both/],
    ['ext_abt_esr without ext_abt_has_esr', inject({ 3: 1, 16: 0x10 }), POSTED, /without ext_abt_has_esr/],
    ['ext_abt_has_esr without RAS', inject({ 3: 1, 4: 1 }), POSTED & ~CAP.RAS, /FEAT_RAS/],
    ['ext_abt_esr outside ISS', inject({ 3: 1, 4: 1, 19: 0x02 }), POSTED, /outside ISS/],
    [
      'INJECT without INJECT_EXT_DABT',
      inject({ 2: 1 }),
      DEFAULT_CAPS & ~CAP.INJECT_EXT_DABT,
      /INJECT_EXT_DABT/,
    ],
  ];
  for (const [name, v, caps, want] of cases)
    assert.match(verdictRefusal(v, sea, caps) ?? 'applied', want, name);
  assert.match(verdictRefusal(inject({ 2: 1 }), sigbus, DEFAULT_CAPS) ?? 'applied', /SIGBUS/);
});

test('the images the daemon builds for the declared host pass, and other actions are not looked at', () => {
  const merged = encodeInjection({ kind: 'data' }, { abi: 'merged', ras: true });
  const posted = encodeInjection({ kind: 'instruction', iss: 0x610 }, { abi: 'ext-abt-esr', ras: true });
  const verdict = (vcpuEvents: Uint8Array) => ({ ...inject({}), vcpuEvents });
  assert.equal(verdictRefusal(verdict(merged), sea, DEFAULT_CAPS), null);
  assert.equal(verdictRefusal(verdict(merged), sea, POSTED), null);
  assert.equal(verdictRefusal(verdict(posted), sea, POSTED), null);
  for (const action of [ACTION.RESUME, ACTION.INJECT_EMULATED, ACTION.KILL])
    assert.equal(verdictRefusal(inject({ 0: 1, 3: 1 }, action), sigbus, 0), null);
});
