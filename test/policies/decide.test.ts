/** onUnsupported per host, explain's bytes, dry-run, the built-in policy, and decide's totality. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
// The run's seed for fast-check (SEAWALL_TEST_SEED replays it; a failure prints it).
import '../helpers/seed.js';
import {
  BUILTIN_POLICY_YAML,
  builtinPolicy,
  type HostCapabilities,
  type PolicyEvent,
  PolicyState,
} from '../../policies/index.js';
import { EXT, MERGED, policyFrom, seaEvent, T0 } from './fixtures.js';

const IABT = `version: 1
name: iabt
rules:
  - name: iabt-chosen
    match: { kind: sea }
    action: { type: inject, abort: instruction, fnv: true, ea: true }
    onUnsupported: [emulate, { type: kill, grace: 5s }]
default: { action: { type: none } }
`;

test('sea_to_user on a merged host: the built-in policy answers 000001 + 122 zeros', () => {
  // The selftest's event: DABT_LOW, FSC 0x10, load from GVA 0x81234BAD.
  const ev = seaEvent({ esr: '0x92000010', gva: '0x81234BAD', gpa: '0x8000000' });
  const x = builtinPolicy().explain(ev, MERGED);
  assert.equal(x.matched.rule, 'default');
  assert.equal(x.decision.action, 'inject');
  assert.equal(x.vcpuEvents?.hex, `000001${'0'.repeat(122)}`);
  assert.deepEqual(
    x.notMatched.map((m) => m.rule),
    ['sigbus-record-only'],
  );
});

test('an instruction abort with a chosen ISS: kvm on ext-abt-esr, emulate or kill on merged', () => {
  const p = policyFrom(IABT);
  const ev = seaEvent();
  const ext = p.explain(ev, EXT);
  assert.deepEqual(ext.decision.action === 'inject' && ext.decision.inject, {
    kind: 'instruction',
    iss: 0x610,
    via: 'kvm',
  });
  assert.equal(ext.decision.downgrade, undefined);
  const image = Buffer.from(ext.vcpuEvents?.hex ?? '', 'hex');
  assert.equal(image[3], 1);
  assert.equal(image[4], 1);
  assert.equal(image.readBigUInt64LE(16), 0x610n);

  const merged = p.explain(ev, MERGED);
  assert.equal(merged.matched.rule, 'iabt-chosen');
  assert.equal(merged.decision.action, 'kill');
  assert.equal(merged.decision.action === 'kill' && merged.decision.graceMs, 5000);
  assert.equal(merged.decision.downgrade?.reason, 'merged_abi_no_iabt');
  assert.equal(merged.decision.downgrade?.from, 'iabt_esr');
  assert.equal(merged.decision.downgrade?.to, 'kill');
  assert.match(merged.decision.downgrade?.detail ?? '', /merged ABI cannot inject an instruction abort/);
  assert.equal(merged.vcpuEvents, null);

  const emulating = p.decide(ev, { ...MERGED, emulateAbort: true });
  assert.deepEqual(emulating.action === 'inject' && emulating.inject, {
    kind: 'instruction',
    iss: 0x610,
    via: 'emulate',
  });
  assert.equal(emulating.downgrade?.to, 'emul_iabt_esr');

  // Without RAS even the posted ABI cannot take a chosen ISS.
  assert.equal(p.decide(ev, { ...EXT, ras: false }).action, 'kill');
});

test('downgrade answers what the host can do: a data abort with KVM’s ESR', () => {
  const p = policyFrom(`version: 1
name: d
rules: []
default:
  action: { type: inject, abort: data, set: ueo }
  onUnsupported: downgrade
`);
  const d = p.decide(seaEvent(), MERGED);
  assert.deepEqual(d.action === 'inject' && d.inject, { kind: 'data', via: 'kvm' });
  assert.deepEqual(
    [d.downgrade?.from, d.downgrade?.to, d.downgrade?.reason],
    ['dabt_esr', 'dabt', 'merged_abi_no_esr'],
  );
  const e = p.decide(seaEvent(), EXT);
  assert.deepEqual(e.action === 'inject' && e.inject, { kind: 'data', iss: 0x1810, via: 'kvm' });
  // After a SIGBUS nothing can be injected: the downgrade is to none.
  const s = p.decide(seaEvent({ kind: 'sigbus', esr: undefined, sigbusCode: 'BUS_MCEERR_AR' }), EXT);
  assert.equal(s.action, 'none');
  assert.equal(s.downgrade?.to, 'none');
});

/** One rule injecting `spec` (YAML flow keys) on every event, with `onUnsupported`. */
const injecting = (spec: string, onUnsupported: string) =>
  policyFrom(`version: 1
name: f
default:
  action: { type: inject, abort: data, ${spec} }
  onUnsupported: ${onUnsupported}
`);

test('a named fsc 0 is downgraded as fsc_altered like fsc 1 (KVM would deliver 0x10); a raw iss with FSC 0 is not', () => {
  // The reviewer's fsc0.yaml / fsc1.yaml on ext-abt-esr: both are replaced by the kill.
  for (const fsc of ['0x00', '0x01']) {
    const d = injecting(`fsc: ${fsc}`, '{ type: kill }').decide(seaEvent(), EXT);
    assert.equal(d.action, 'kill', fsc);
    assert.deepEqual([d.downgrade?.from, d.downgrade?.reason], ['dabt_esr', 'fsc_altered'], fsc);
  }
  // The kernel's selftest ISS (ISV|FnV|EA, FSC 0) as a raw iss: KVM's FSC 0x10 is asked for.
  const raw = injecting('iss: 0x1000600', '{ type: kill }');
  const r = raw.explain(seaEvent(), EXT);
  assert.deepEqual(r.decision.action === 'inject' && r.decision.inject, {
    kind: 'data',
    iss: 0x1000600,
    via: 'kvm',
  });
  assert.equal(r.decision.downgrade, undefined);
  // Emulation cannot carry a named FSC 0 either (the emulated ESR gets FSC 0x10): passed over.
  const d = injecting('fsc: 0', '[emulate, downgrade]').decide(seaEvent(), { ...EXT, emulateAbort: true });
  assert.deepEqual(d.action === 'inject' && d.inject, { kind: 'data', via: 'kvm' });
  assert.deepEqual([d.downgrade?.to, d.downgrade?.reason], ['dabt', 'fsc_altered']);
  const one = injecting('fsc: 1', '[emulate, downgrade]').decide(seaEvent(), { ...EXT, emulateAbort: true });
  assert.deepEqual(one.action === 'inject' && one.inject, { kind: 'data', iss: 1, via: 'emulate' });
  // A named FSC KVM keeps is injected as named.
  const kept = injecting('fsc: 0x18', '{ type: kill }').decide(seaEvent(), EXT);
  assert.deepEqual(kept.action === 'inject' && kept.inject, { kind: 'data', iss: 0x18, via: 'kvm' });
});

test('dry-run answers with the built-in default and records the real decision', () => {
  const p = policyFrom(IABT.replace('name: iabt', 'name: iabt\ndryRun: true'));
  const d = p.decide(seaEvent(), MERGED);
  assert.equal(d.rule, 'iabt-chosen');
  assert.deepEqual(d.action === 'inject' && d.inject, { kind: 'data', via: 'kvm' });
  assert.equal(d.downgrade, undefined);
  assert.equal(d.dryRun?.wouldHave.action, 'kill');
  assert.equal(d.dryRun?.downgrade?.reason, 'merged_abi_no_iabt');
  assert.match(d.dryRun?.downgrade?.detail ?? '', /instruction abort/);
  assert.equal(p.explain(seaEvent(), MERGED).vcpuEvents?.hex, `000001${'0'.repeat(122)}`);
});

test('the built-in policy is policies/examples/default.yaml, byte for byte', () => {
  const file = readFileSync(new URL('../../policies/examples/default.yaml', import.meta.url), 'utf8');
  assert.equal(file, BUILTIN_POLICY_YAML);
  const p = builtinPolicy();
  const sigbus = seaEvent({ kind: 'sigbus', esr: undefined, vcpu: null, sigbusCode: 'BUS_MCEERR_AO' });
  for (const host of [MERGED, EXT, { ...EXT, ras: false }]) {
    assert.equal(p.decide(seaEvent(), host).action, 'inject');
    assert.equal(p.decide(seaEvent(), host).downgrade, undefined);
    assert.equal(p.decide(sigbus, host).action, 'none');
  }
});

test('decisions are frozen and shared: nothing is allocated per event for them', () => {
  const p = builtinPolicy();
  const a = p.decide(seaEvent(), MERGED);
  assert.equal(p.decide(seaEvent({ timeMs: T0 + 1 }), MERGED), a);
  assert.ok(Object.isFrozen(a));
});

const eventArb: fc.Arbitrary<PolicyEvent> = fc.record({
  kind: fc.constantFrom('sea', 'nisv', 'mmio', 'sigbus'),
  vm: fc.record({
    id: fc.string(),
    labels: fc.dictionary(fc.constantFrom('tier', 'tenant', 'constructor', '__proto__', 'x'), fc.string()),
  }),
  vcpu: fc.option(fc.nat(70000)),
  timeMs: fc.oneof(fc.integer(), fc.double()),
  esr: fc.constant(null),
  abort: fc.option(fc.constantFrom('data', 'instruction')),
  fsc: fc.option(fc.constantFrom('sea', 'sea-walk', 'parity', 'parity-walk', 'other')),
  severity: fc.constantFrom('uer', 'ueo', 'uc', 'reserved', 'unknown'),
  gpa: fc.option(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  sigbusCode: fc.option(fc.constantFrom('BUS_MCEERR_AR', 'BUS_MCEERR_AO')),
}) as fc.Arbitrary<PolicyEvent>;

const hostArb: fc.Arbitrary<HostCapabilities> = fc.record({
  abi: fc.constantFrom('merged', 'ext-abt-esr'),
  ras: fc.boolean(),
  emulateAbort: fc.boolean(),
});

test('decide never throws, whatever the event, and always answers something the host can take', () => {
  const policies = [
    builtinPolicy({ state: new PolicyState({ maxKeys: 8 }) }),
    policyFrom(IABT),
    policyFrom(readFileSync(new URL('../../policies/examples/tiered.yaml', import.meta.url), 'utf8')),
    policyFrom(
      readFileSync(new URL('../../policies/examples/host-degradation.yaml', import.meta.url), 'utf8'),
    ),
  ];
  fc.assert(
    fc.property(eventArb, hostArb, (ev, host) => {
      for (const p of policies) {
        const d = p.decide(ev, host);
        const inj = d.action === 'inject' ? d.inject : d.action === 'migrate' ? d.meanwhile : null;
        if (inj?.via === 'kvm') {
          assert.ok(host.abi === 'ext-abt-esr' || (inj.kind === 'data' && inj.iss === undefined));
          assert.ok(inj.iss === undefined || host.ras);
          assert.notEqual(ev.kind, 'sigbus');
        }
        if (inj?.via === 'emulate') assert.ok(host.emulateAbort);
      }
    }),
    { numRuns: 2000 },
  );
});
