/**
 * The abort the guest receives (kvm/guest-abort.ts), with the values real kernels delivered in the
 * real-KVM lane (docs/real-kvm.md): 0x96000010 at EL1 after ext_dabt_pending, read as
 * 0xffffffff96000010 on Linux 6.1; the VMM's emulation switches EC to the current-EL class.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  emulatedAbortEsr,
  emulatedGuestEsr,
  guestAbortAfterEmulation,
  guestAbortAfterKvm,
  kvmInjectedEsr,
} from '../../kvm/index.js';
import { compilePolicy, parsePolicy, policyEventFromJson } from '../../policies/index.js';

test('KVM injection: EC by the guest EL, IL, FSC 0x10 and nothing else on a merged kernel', () => {
  assert.equal(kvmInjectedEsr('data', 1), 0x96000010n);
  assert.equal(kvmInjectedEsr('data', 0), 0x92000010n);
  assert.equal(kvmInjectedEsr('instruction', 1), 0x86000010n);
  // The posted ABI starts from the chosen ISS and ORs EC, IL and FSC 0x10 in.
  assert.equal(kvmInjectedEsr('data', 1, 0x600), 0x96000610n);
});

test('Linux 6.1 is marked as sign-extending bits [63:32]; 7.x is not', () => {
  assert.equal(
    guestAbortAfterKvm('data', 1, 0x8000000n, undefined, '6.1.0-50-arm64').esrUpper,
    'linux-6.1-sign-extended',
  );
  assert.equal(guestAbortAfterKvm('data', 1, 0x8000000n, undefined, '7.3.4+deb13-arm64').esrUpper, 'zero');
  const g = guestAbortAfterKvm('data', 1, 0x8000ff8n);
  assert.deepEqual({ vector: g.vectorOffset, far: g.far }, { vector: 0x200, far: 0x8000ff8n });
  assert.equal(guestAbortAfterKvm('data', 0, null).vectorOffset, 0x400);
});

test('emulation: the verdict ESR (lower-EL EC) becomes the current-EL class at EL1', () => {
  assert.equal(emulatedAbortEsr('data'), 0x92000010n);
  assert.equal(emulatedAbortEsr('instruction'), 0x82000010n);
  assert.equal(emulatedAbortEsr('data', 0x400), 0x92000410n, 'an ISS without FSC gets FSC 0x10');
  assert.equal(emulatedGuestEsr(0x82000010n, 1), 0x86000010n);
  assert.equal(emulatedGuestEsr(0x92000010n, 0), 0x92000010n);
  assert.equal(guestAbortAfterEmulation(0x92000010n, 1, 0x40100000n).esr, 0x96000010n);
});

test('explain predicts what the guest receives, with the 6.1 form beside it', () => {
  const r = parsePolicy(
    'version: 1\nname: t\ndefault: { action: { type: inject, abort: data }, onUnsupported: [emulate, downgrade] }\n',
    't.yaml',
  );
  assert.ok(r.ok);
  const policy = compilePolicy(r.policy);
  const event = policyEventFromJson({
    kind: 'mmio',
    vm: { id: 'v' },
    vcpu: 0,
    gpa: '0x8000000',
    gva: '0x8000010',
  });
  const x = policy.explain(event, { abi: 'merged', ras: true, emulateAbort: false });
  assert.deepEqual(x.guest, {
    vectorOffset: 0x200,
    esr: 0x96000010n,
    esrOnLinux61: 0xffffffff96000010n,
    far: 0x8000010n,
  });
  const sigbus = policyEventFromJson({
    kind: 'sigbus',
    vm: { id: 'v' },
    vcpu: 0,
    sigbusCode: 'BUS_MCEERR_AR',
  });
  assert.equal(policy.explain(sigbus, { abi: 'merged', ras: true, emulateAbort: false }).guest, null);
  // After a SIGBUS the VMM has no guest VA: FnV, and FAR_EL1 written as 0 (docs/protocol.md §5.1).
  assert.deepEqual(
    [
      policy.explain(sigbus, { abi: 'merged', ras: true, emulateAbort: true }).guest?.esr,
      policy.explain(sigbus, { abi: 'merged', ras: true, emulateAbort: true }).guest?.far,
    ],
    [0x96000410n, 0n],
  );
});
