/**
 * The kernel's own acceptance scenarios (reference §7), as data: what the VMM must see on each
 * exit and the exact bytes it injects.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeEsr,
  decodeExit,
  EMPTY_EVENTS,
  encodeInjection,
  encodeVcpuEvents,
  isKvmError,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_MMIO,
  KVM_RUN_SIZE_ARM64,
  type KvmExit,
  nonConformingSeaEsrBits,
  seaExit,
  writeExit,
} from '../../kvm/index.js';

const GVA = 0x81234badn;
const GPA = 0x1_4567_8badn; // the guest physical address of the poisoned load

function page(exit: KvmExit): Uint8Array {
  const buf = new Uint8Array(KVM_RUN_SIZE_ARM64);
  writeExit(buf, exit);
  return buf;
}

/** The ESR a conforming 6.19 kernel reports for a guest load at EL1 hitting poison, FnV clear. */
const SEA_ESR = (0x24n << 26n) | (1n << 25n) | 0x10n;

test('sea_to_user: the exit decodes to EC 0x24, FSC 0x10, with the gva and page-aligned gpa rules', () => {
  const buf = page(seaExit(SEA_ESR, GVA, GPA & ~0xfffn));
  assert.equal(new DataView(buf.buffer).getUint32(8, true), KVM_EXIT_ARM_SEA);
  const exit = decodeExit(buf);
  assert.equal(exit.reason, 'arm-sea');
  if (exit.reason !== 'arm-sea') return;
  const esr = decodeEsr(exit.esr);
  assert.equal(esr.ec, 0x24);
  assert.equal(Number(exit.esr & 0x3cn), 0x10, '(esr & 0x3C) == 0x10');
  assert.equal(esr.iss2, 0);
  assert.ok(esr.abort);
  assert.equal(esr.abort.kind, 'data');
  assert.equal(esr.abort.fscClass.kind, 'sea');
  assert.equal(esr.abort.isv, false);
  assert.equal(esr.abort.access, null);
  assert.equal(esr.abort.vncr, false);
  assert.deepEqual(nonConformingSeaEsrBits(exit.esr), []);
  // FnV == 0, so gva is the faulting address.
  assert.equal(exit.gvaValid, true);
  assert.equal(exit.gva, GVA);
  // GPA_VALID, so gpa is the guest physical address with its low 12 bits cleared.
  assert.equal(exit.gpaValid, true);
  assert.equal(exit.gpa, GPA & ~0xfffn);
  assert.equal(exit.gpa & 0xfffn, 0n);
});

test('sea_to_user with FnV set: gva is not valid and the kernel leaves it 0', () => {
  const exit = decodeExit(page(seaExit(SEA_ESR | (1n << 10n), GVA, null)));
  assert.equal(exit.reason, 'arm-sea');
  if (exit.reason !== 'arm-sea') return;
  assert.equal(exit.gvaValid, false);
  assert.equal(exit.gva, 0n);
  assert.equal(exit.gpaValid, false);
});

test('sea_to_user: the injection image is ext_dabt_pending=1 and 63 zero bytes', () => {
  const image = encodeInjection({ kind: 'data' }, { abi: 'merged', ras: true }, KVM_EXIT_ARM_SEA);
  assert.equal(image.length, 64);
  assert.equal(image[2], 1);
  assert.equal(image.filter((b, i) => i !== 2 && b !== 0).length, 0);
  assert.equal(image.toString('hex'), `000001${'0'.repeat(122)}`);
});

test('external_aborts: an unbacked MMIO read decodes and allows the same injection', () => {
  const buf = page({ reason: 'mmio', physAddr: 0x8000000n, data: new Uint8Array(8), len: 8, isWrite: false });
  const exit = decodeExit(buf);
  assert.deepEqual(exit, {
    reason: 'mmio',
    physAddr: 0x8000000n,
    data: new Uint8Array(8),
    len: 8,
    isWrite: false,
  });
  const image = encodeInjection({ kind: 'data' }, { abi: 'merged', ras: false }, KVM_EXIT_MMIO);
  assert.equal(image.toString('hex'), `000001${'0'.repeat(122)}`);
});

test('external_aborts: a no-syndrome access gives ARM_NISV with fault_ipa and the same injection', () => {
  const exit = decodeExit(page({ reason: 'arm-nisv', esrIss: 0n, faultIpa: 0x8000000n }));
  assert.deepEqual(exit, { reason: 'arm-nisv', esrIss: 0n, faultIpa: 0x8000000n });
  const image = encodeInjection({ kind: 'data' }, { abi: 'ext-abt-esr', ras: true }, 28);
  assert.equal(image.toString('hex'), `000001${'0'.repeat(122)}`);
});

test('inject_iabt: dabt and iabt together are refused before any bytes exist', () => {
  assert.throws(
    () =>
      encodeVcpuEvents(
        { ...EMPTY_EVENTS, extDabtPending: true, extIabtPending: true },
        { abi: 'ext-abt-esr', ras: true },
        41,
      ),
    (err) => isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') && err.detail.rule === 'both-abort-kinds',
  );
});

test('ESR injection: ISS bits above 24 are refused before any bytes exist', () => {
  assert.throws(
    () => encodeInjection({ kind: 'instruction', iss: 0x2000000 }, { abi: 'ext-abt-esr', ras: true }),
    (err) => isKvmError(err, 'SEAWALL_KVM_ISS_INVALID'),
  );
  assert.throws(
    () =>
      encodeVcpuEvents(
        { ...EMPTY_EVENTS, extIabtPending: true, extAbtHasEsr: true, extAbtEsr: 1n << 25n },
        { abi: 'ext-abt-esr', ras: true },
        41,
      ),
    (err) => isKvmError(err, 'SEAWALL_KVM_EVENTS_REJECTED') && err.detail.rule === 'abt-esr-outside-iss',
  );
});

test('inject_iabt with ISS = ISV|FnV|EA: bytes 3 and 4 set, the ISS little endian at 16', () => {
  const iss = (1 << 24) | (1 << 10) | (1 << 9);
  const image = encodeInjection({ kind: 'instruction', iss }, { abi: 'ext-abt-esr', ras: true });
  assert.equal(image[2], 0);
  assert.equal(image[3], 1);
  assert.equal(image[4], 1);
  assert.equal(image.readBigUInt64LE(16), BigInt(iss));
  assert.deepEqual([...image.subarray(5, 8)], [0, 0, 0]);
  assert.ok(image.subarray(24).every((b) => b === 0));
});
