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
import { IMAGE_VECTORS, image } from '../protocol/conformance/image-vectors.js';

const sea = { type: 'sea', seq: 1 } as EventMsg;
const sigbus = { type: 'sigbus', seq: 1 } as EventMsg;
const POSTED = DEFAULT_CAPS | CAP.EXT_ABT_ESR;

function inject(bytes: Readonly<Record<number, number>>, action: number = ACTION.INJECT) {
  return { seq: 1, action, flags: 0, graceMs: 0, esr: 0n, vcpuEvents: image(bytes) };
}

test('images the declared host would refuse or misread are refused, each by its rule, and the rest pass', () => {
  // The vectors the conformance suite holds the C library and the Rust crate to as well.
  for (const v of IMAGE_VECTORS) {
    const got = verdictRefusal(inject(v.bytes), v.event === 'sea' ? sea : sigbus, v.caps);
    if (v.refused) assert.match(got ?? 'applied', v.refused, v.name);
    else assert.equal(got, null, v.name);
  }
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
