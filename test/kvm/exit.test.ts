import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import {
  decodeExit,
  isKvmError,
  KVM_RUN_SIZE_ARM64,
  readExitReason,
  seaExit,
  writeExit,
} from '../../kvm/index.js';

test('an unknown exit reason is a typed error carrying the number', () => {
  const buf = new Uint8Array(KVM_RUN_SIZE_ARM64);
  new DataView(buf.buffer).setUint32(8, 2 /* KVM_EXIT_IO */, true);
  assert.throws(
    () => decodeExit(buf),
    (err) => isKvmError(err, 'SEAWALL_KVM_UNKNOWN_EXIT') && err.detail.exitReason === 2,
  );
});

test('a buffer too short for an exit record is a typed error, not an out-of-range read', () => {
  assert.throws(
    () => decodeExit(new Uint8Array(40)),
    (err) => isKvmError(err, 'SEAWALL_KVM_SHORT_BUFFER'),
  );
  assert.throws(
    () => readExitReason(new Uint8Array(4)),
    (err) => isKvmError(err, 'SEAWALL_KVM_SHORT_BUFFER'),
  );
});

test('property: SEA exits survive write → decode, at any byte offset of a larger buffer', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.option(fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }), { nil: null }),
      fc.integer({ min: 0, max: 64 }),
      (esr, gva, gpaPage, offset) => {
        const backing = new Uint8Array(KVM_RUN_SIZE_ARM64 + 64);
        const buf = backing.subarray(offset, offset + KVM_RUN_SIZE_ARM64);
        const exit = seaExit(esr, gva, gpaPage === null ? null : gpaPage << 12n);
        writeExit(buf, exit);
        assert.deepEqual(decodeExit(buf), exit);
      },
    ),
  );
});
