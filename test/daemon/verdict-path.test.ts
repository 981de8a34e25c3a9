/** The sea_to_user selftest exit, end to end through the daemon's real socket. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KVM_EXIT_ARM_SEA_FLAG_GPA_VALID } from '../../kvm/index.js';
import { ACTION, WIRE_ERROR } from '../../protocol/index.js';
import { type RunningDaemon, removeDir, startDaemon } from '../helpers/daemon.js';
import { RawClient } from '../helpers/raw-client.js';

let d: RunningDaemon;
before(async () => {
  d = await startDaemon({ metrics: false });
});
after(async () => {
  await d.stop();
  removeDir(d.dir);
});

const SEA = {
  type: 'sea' as const,
  vcpu: 0,
  timeNs: 0n,
  replay: false,
  fallbackAction: 0,
  kvmFlags: KVM_EXIT_ARM_SEA_FLAG_GPA_VALID,
  esr: (0x24n << 26n) | (1n << 25n) | 0x10n,
  gva: 0x81234badn,
  gpa: 0x4_5678_b000n,
};

test('sea_to_user: the verdict is INJECT with ext_dabt_pending=1 and 63 zero bytes', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('selftest-vm');
  c.send({ ...SEA, seq: 42 });
  const v = await c.waitFor('verdict', (m) => m.seq === 42);
  assert.equal(v.action, ACTION.INJECT);
  assert.equal(Buffer.from(v.vcpuEvents).toString('hex'), `000001${'0'.repeat(122)}`);
  c.destroy();
});

test('an ext-abt-esr host gets the same data abort: the built-in policy lets KVM build the ESR', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('selftest-vm-ext', { caps: 0b10111 });
  c.send({ ...SEA, seq: 1 });
  const v = await c.waitFor('verdict');
  assert.equal(Buffer.from(v.vcpuEvents).toString('hex'), `000001${'0'.repeat(122)}`);
  c.destroy();
});

const SIGBUS_AR = {
  type: 'sigbus' as const,
  seq: 5,
  vcpu: 1,
  timeNs: 0n,
  replay: false,
  fallbackAction: 0,
  siCode: 4,
  addrLsb: 12,
  gpa: 0x1000n,
};

test('a SIGBUS under the built-in policy is recorded and the vCPU resumed (KVM cannot inject after it)', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('sigbus-vm', { caps: 0b11011 });
  c.send(SIGBUS_AR);
  const v = await c.waitFor('verdict');
  assert.equal(v.action, ACTION.RESUME);
  c.destroy();
});

test('a SIGBUS with a policy that asks to inject: INJECT_EMULATED with a DABT ESR when the VMM emulates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'seawall-pol-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    [
      'version: 1',
      'name: sigbus-emulate',
      'rules:',
      '  - name: sigbus-inject',
      '    match: { kind: sigbus }',
      '    action: { type: inject, abort: data }',
      '    onUnsupported: [emulate, downgrade]',
      'default:',
      '  action: { type: inject, abort: data }',
      '',
    ].join('\n'),
  );
  const e = await startDaemon({ metrics: false, args: ['--policy', policy] });
  try {
    const c = await RawClient.open(e.socket);
    await c.hello('sigbus-emulating-vm', { caps: 0b11011 });
    c.send(SIGBUS_AR);
    const v = await c.waitFor('verdict');
    assert.equal(v.action, ACTION.INJECT_EMULATED);
    assert.equal(v.esr >> 26n, 0x24n);
    assert.equal(v.esr & 0x3fn, 0x10n);
    c.destroy();
  } finally {
    await e.stop();
    removeDir(e.dir);
    removeDir(dir);
  }
});

test('a vCPU index beyond the HELLO count is a protocol error for that session only', async () => {
  const c = await RawClient.open(d.socket);
  await c.hello('bad-vcpu-vm', { vcpuCount: 2 });
  c.send({ ...SEA, seq: 1, vcpu: 2 });
  const e = await c.waitFor('error');
  assert.equal(e.code, WIRE_ERROR.BAD_FIELD);
  await c.closed;
});
