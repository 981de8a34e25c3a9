import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import {
  decodeAbortIss,
  decodeEsr,
  encodeIss,
  type IssFields,
  isKvmError,
  parseEsr,
} from '../../kvm/index.js';

test('0x92000410: data abort from a lower EL, IL, FnV, FSC 0x10 SEA', () => {
  const e = decodeEsr(0x92000410n);
  assert.equal(e.ec, 0x24);
  assert.equal(e.ecName, 'dabt-lower-el');
  assert.equal(e.il, true);
  assert.ok(e.abort);
  assert.equal(e.abort.kind, 'data');
  assert.equal(e.abort.fromLowerEl, true);
  assert.equal(e.abort.fnv, true);
  assert.equal(e.abort.fsc, 0x10);
  assert.deepEqual(e.abort.fscClass, { kind: 'sea' });
  assert.equal(e.abort.severity, 'uer');
});

test('FSC classes and SET severities', () => {
  const fsc = (v: number) => decodeAbortIss(v, 'data', true).fscClass;
  assert.deepEqual(fsc(0x13), { kind: 'sea-walk', level: -1 });
  assert.deepEqual(fsc(0x17), { kind: 'sea-walk', level: 3 });
  assert.deepEqual(fsc(0x18), { kind: 'parity' });
  assert.deepEqual(fsc(0x1b), { kind: 'parity-walk', level: -1 });
  assert.deepEqual(fsc(0x1f), { kind: 'parity-walk', level: 3 });
  assert.deepEqual(fsc(0x04), { kind: 'other' });
  const sev = (set: number) => decodeAbortIss(0x10 | (set << 11), 'data', true).severity;
  assert.deepEqual([0, 1, 2, 3].map(sev), ['uer', 'reserved', 'uc', 'ueo']);
  assert.equal(
    decodeAbortIss(0x18 | (2 << 11), 'data', true).severity,
    null,
    'SET means nothing without FSC 0x10',
  );
});

test('ISV access fields decode for data aborts only', () => {
  const iss = (1 << 24) | (3 << 22) | (1 << 21) | (7 << 16) | (1 << 15) | (1 << 14);
  assert.deepEqual(decodeAbortIss(iss, 'data', true).access, {
    sas: 3,
    sse: true,
    srt: 7,
    sf: true,
    ar: true,
  });
  assert.equal(decodeAbortIss(iss, 'instruction', true).access, null);
});

test('other exception classes are named, with no abort fields', () => {
  assert.equal(decodeEsr(0x2fn << 26n).ecName, 'serror');
  assert.equal(decodeEsr(0x2fn << 26n).abort, null);
  assert.equal(decodeEsr(0x3fn << 26n).ecName, 'other');
});

test('parseEsr: hex, decimal, and clear refusals', () => {
  assert.equal(parseEsr('0x92000410'), 0x92000410n);
  assert.equal(parseEsr('2449474576'), 0x92000410n);
  for (const bad of ['banana', '-1', '0x', '0x1ffffffffffffffff', '']) {
    assert.throws(
      () => parseEsr(bad),
      (err) => isKvmError(err, 'SEAWALL_KVM_ESR_INVALID'),
      bad,
    );
  }
});

const issFields = (kind: 'data' | 'instruction') =>
  fc
    .record(
      {
        fsc: fc.integer({ min: 0, max: 0x3f }),
        set: fc.constantFrom<IssFields['set']>('uer', 'uc', 'ueo'),
        fnv: fc.boolean(),
        ea: fc.boolean(),
        cm: fc.boolean(),
        wnr: kind === 'data' ? fc.boolean() : fc.constant(false),
      },
      { requiredKeys: ['fnv', 'ea', 'cm', 'wnr'] },
    )
    .filter((f) => f.set === undefined || (f.fsc ?? 0x10) === 0x10);

for (const kind of ['data', 'instruction'] as const) {
  test(`property: ISS encode → decode round-trips every valid ${kind}-abort combination`, () => {
    fc.assert(
      fc.property(issFields(kind), (f) => {
        const iss = encodeIss(f, kind);
        assert.ok(iss >= 0 && iss <= 0x1ffffff);
        const d = decodeAbortIss(iss, kind, true);
        assert.equal(d.fsc, f.fsc ?? 0x10);
        assert.equal(d.fnv, f.fnv);
        assert.equal(d.ea, f.ea);
        assert.equal(d.cm, f.cm);
        assert.equal(d.wnr, f.wnr);
        if (f.set !== undefined) assert.equal(d.severity, f.set);
        else if (d.fsc === 0x10) assert.equal(d.severity, 'uer');
      }),
      { numRuns: 3000 },
    );
  });
}

test('ISS encode refuses SET without FSC 0x10, wnr on an instruction abort, a 7-bit FSC', () => {
  assert.throws(
    () => encodeIss({ set: 'uc', fsc: 0x18 }, 'data'),
    (e) => isKvmError(e, 'SEAWALL_KVM_ISS_INVALID'),
  );
  assert.throws(
    () => encodeIss({ wnr: true }, 'instruction'),
    (e) => isKvmError(e, 'SEAWALL_KVM_ISS_INVALID'),
  );
  assert.throws(
    () => encodeIss({ fsc: 0x40 }, 'data'),
    (e) => isKvmError(e, 'SEAWALL_KVM_ISS_INVALID'),
  );
});

test('property: the decoder never throws on arbitrary 64-bit input, and only its typed error outside', () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
      const e = decodeEsr(v);
      assert.equal(e.raw, v);
      assert.ok(e.iss <= 0x1ffffff && e.iss2 <= 0xffffff);
    }),
    { numRuns: 5000 },
  );
  fc.assert(
    fc.property(
      fc.oneof(fc.bigInt({ min: -(1n << 70n), max: -1n }), fc.bigInt({ min: 1n << 64n, max: 1n << 80n })),
      (v) => {
        assert.throws(
          () => decodeEsr(v),
          (err) => isKvmError(err, 'SEAWALL_KVM_ESR_INVALID'),
        );
      },
    ),
  );
});
