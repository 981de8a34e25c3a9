import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import {
  decodeVcpuEvents,
  EMPTY_EVENTS,
  encodeInjection,
  encodeVcpuEvents,
  type InjectionAbi,
  isKvmError,
  KVM_EXIT_ARM_SEA,
} from '../../kvm/index.js';

const zeroPadAndReserved = (image: Buffer, abi: InjectionAbi): boolean =>
  abi === 'merged'
    ? image.subarray(3, 8).every((b) => b === 0) && image.subarray(16).every((b) => b === 0)
    : image.subarray(5, 8).every((b) => b === 0) && image.subarray(24).every((b) => b === 0);

test('merged ABI: an instruction abort or a chosen ISS is refused, naming the ABI limit', () => {
  for (const req of [{ kind: 'instruction' as const }, { kind: 'data' as const, iss: 0x10 }]) {
    assert.throws(
      () => encodeInjection(req, { abi: 'merged', ras: true }),
      (err) => isKvmError(err, 'SEAWALL_KVM_ABI_UNSUPPORTED') && /merged ABI/.test(err.message),
    );
  }
});

test('a chosen ISS on a host without RAS is refused (kernel rule 5)', () => {
  assert.throws(
    () => encodeInjection({ kind: 'data', iss: 0x10 }, { abi: 'ext-abt-esr', ras: false }),
    (err) => isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') && err.detail.rule === 'abt-esr-without-ras',
  );
});

test('injection after an exit other than MMIO, NISV or SEA is refused', () => {
  assert.throws(
    () => encodeInjection({ kind: 'data' }, { abi: 'merged', ras: true }, 2 /* KVM_EXIT_IO */),
    (err) => isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') && err.detail.rule === 'not-after-abort-exit',
  );
});

test('an ISS whose FSC KVM would rewrite is refused; FSC 0 (let KVM choose) is accepted', () => {
  assert.throws(
    () => encodeInjection({ kind: 'data', iss: 0x04 }, { abi: 'ext-abt-esr', ras: true }),
    (err) => isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') && err.detail.rule === 'fsc-altered-by-kvm',
  );
  assert.equal(
    encodeInjection({ kind: 'data', iss: 0x400 }, { abi: 'ext-abt-esr', ras: true }).readBigUInt64LE(16),
    0x400n,
  );
  assert.equal(
    encodeInjection({ kind: 'data', iss: 0x18 }, { abi: 'ext-abt-esr', ras: true }).readBigUInt64LE(16),
    0x18n,
  );
});

test("a named FSC 0 is refused as altered (KVM delivers 0x10); a raw ISS with FSC 0 still asks for KVM's", () => {
  const ext = { abi: 'ext-abt-esr', ras: true } as const;
  assert.throws(
    () => encodeInjection({ kind: 'data', iss: 0, fscNamed: true }, ext),
    (err) =>
      isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') &&
      err.detail.rule === 'fsc-altered-by-kvm' &&
      /FSC 0x0 would reach the guest as 0x10/.test(err.message),
  );
  // The kernel's selftest ISS (reference §7): ISV|FnV|EA, FSC 0, reaching the guest with FSC 0x10.
  const selftest = (1 << 24) | (1 << 10) | (1 << 9);
  assert.equal(
    encodeInjection({ kind: 'instruction', iss: selftest }, ext).readBigUInt64LE(16),
    BigInt(selftest),
  );
  // Named FSCs KVM leaves as they are stay accepted.
  for (const fsc of [0x10, 0x18, 0x1f])
    assert.equal(
      encodeInjection({ kind: 'data', iss: fsc, fscNamed: true }, ext).readBigUInt64LE(16),
      BigInt(fsc),
    );
});

test('SError rules: has_esr needs RAS and an ISS-sized ESR', () => {
  const host = { abi: 'merged' as const, ras: false };
  assert.throws(
    () =>
      encodeVcpuEvents({ ...EMPTY_EVENTS, serrorPending: true, serrorHasEsr: true }, host, KVM_EXIT_ARM_SEA),
    (err) => isKvmError(err) && err.detail.rule === 'serror-esr-without-ras',
  );
  assert.throws(
    () =>
      encodeVcpuEvents(
        { ...EMPTY_EVENTS, serrorPending: true, serrorHasEsr: true, serrorEsr: 1n << 25n },
        { abi: 'merged', ras: true },
        KVM_EXIT_ARM_SEA,
      ),
    (err) => isKvmError(err) && err.detail.rule === 'serror-esr-outside-iss',
  );
});

test('property: every image the encoder produces has zero pad and reserved bytes and decodes back', () => {
  const request = fc.record({
    abi: fc.constantFrom<InjectionAbi>('merged', 'ext-abt-esr'),
    ras: fc.boolean(),
    kind: fc.constantFrom<'data' | 'instruction'>('data', 'instruction'),
    iss: fc.option(fc.integer({ min: -4, max: 0x3ffffff }), { nil: undefined }),
    afterExit: fc.constantFrom(6, 28, 41, 2, 0),
  });
  fc.assert(
    fc.property(request, ({ abi, ras, kind, iss, afterExit }) => {
      let image: Buffer;
      try {
        image = encodeInjection({ kind, iss }, { abi, ras }, afterExit);
      } catch (err) {
        assert.ok(isKvmError(err), `only typed errors escape: ${String(err)}`);
        return;
      }
      assert.equal(image.length, 64);
      assert.ok(zeroPadAndReserved(image, abi), image.toString('hex'));
      const back = decodeVcpuEvents(image, abi);
      assert.equal(back.extDabtPending, kind === 'data');
      assert.equal(back.extIabtPending, kind === 'instruction');
      assert.equal(back.extAbtHasEsr, iss !== undefined);
      assert.equal(back.extAbtEsr, BigInt(iss ?? 0));
    }),
    { numRuns: 2000 },
  );
});
