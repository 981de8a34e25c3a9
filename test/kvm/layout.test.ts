import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import koffi from 'koffi';
import * as K from '../../kvm/index.js';
import { exitFieldOffset, KvmRun, KvmVcpuEventsExtAbt, KvmVcpuEventsMerged } from '../../kvm/layouts.js';
import { requireTool } from '../helpers/tools.js';
import { WAIT_MS } from '../helpers/wait.js';

/** The C program's figures, compiled from definitions written from the reference. */
function compileAndRun(t: import('node:test').TestContext): Map<string, number> | null {
  const gcc = requireTool(t, 'gcc', 'gcc');
  if (!gcc) return null;
  const dir = mkdtempSync(join(tmpdir(), 'seawall-layout-'));
  try {
    const bin = join(dir, 'kvm_layouts');
    const src = new URL('./fixtures/kvm_layouts.c', import.meta.url).pathname;
    execFileSync(gcc, ['-Wall', '-Wextra', '-Werror', '-o', bin, src], { timeout: WAIT_MS });
    const out = execFileSync(bin, { encoding: 'utf8', timeout: WAIT_MS });
    return new Map(
      out
        .trim()
        .split('\n')
        .map((line) => {
          const [k, v] = line.split(' ');
          return [k as string, Number(v)];
        }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('koffi layouts and TypeScript constants agree with gcc, figure by figure', (t) => {
  const c = compileAndRun(t);
  if (!c) return;
  const get = (k: string): number => {
    const v = c.get(k);
    assert.notEqual(v, undefined, `C program did not print ${k}`);
    return v as number;
  };
  const ours: Record<string, number> = {
    'sizeof.kvm_run': koffi.sizeof(KvmRun),
    'offsetof.kvm_run.exit_reason': koffi.offsetof(KvmRun, 'exit_reason'),
    'offsetof.kvm_run.exit': koffi.offsetof(KvmRun, 'exit'),
    'offsetof.kvm_run.arm_sea.flags': exitFieldOffset('arm_sea', 'flags'),
    'offsetof.kvm_run.arm_sea.esr': exitFieldOffset('arm_sea', 'esr'),
    'offsetof.kvm_run.arm_sea.gva': exitFieldOffset('arm_sea', 'gva'),
    'offsetof.kvm_run.arm_sea.gpa': exitFieldOffset('arm_sea', 'gpa'),
    'offsetof.kvm_run.arm_nisv.esr_iss': exitFieldOffset('arm_nisv', 'esr_iss'),
    'offsetof.kvm_run.arm_nisv.fault_ipa': exitFieldOffset('arm_nisv', 'fault_ipa'),
    'offsetof.kvm_run.mmio.phys_addr': exitFieldOffset('mmio', 'phys_addr'),
    'offsetof.kvm_run.mmio.data': exitFieldOffset('mmio', 'data'),
    'offsetof.kvm_run.mmio.len': exitFieldOffset('mmio', 'len'),
    'offsetof.kvm_run.mmio.is_write': exitFieldOffset('mmio', 'is_write'),
    'sizeof.kvm_vcpu_events_merged': koffi.sizeof(KvmVcpuEventsMerged),
    'sizeof.kvm_vcpu_events_ext_abt': koffi.sizeof(KvmVcpuEventsExtAbt),
    'sizeof.kvm_enable_cap': K.KVM_ENABLE_CAP_SIZE,
    'sizeof.kvm_one_reg': K.KVM_ONE_REG_SIZE,
    'ioctl.KVM_GET_API_VERSION': K.KVM_GET_API_VERSION,
    'ioctl.KVM_CHECK_EXTENSION': K.KVM_CHECK_EXTENSION,
    'ioctl.KVM_GET_VCPU_MMAP_SIZE': K.KVM_GET_VCPU_MMAP_SIZE,
    'ioctl.KVM_RUN': K.KVM_RUN,
    'ioctl.KVM_GET_VCPU_EVENTS': K.KVM_GET_VCPU_EVENTS,
    'ioctl.KVM_SET_VCPU_EVENTS': K.KVM_SET_VCPU_EVENTS,
    'ioctl.KVM_SET_VCPU_EVENTS_EXT_ABT': K.KVM_SET_VCPU_EVENTS,
    'ioctl.KVM_ENABLE_CAP': K.KVM_ENABLE_CAP,
    'ioctl.KVM_GET_ONE_REG': K.KVM_GET_ONE_REG,
    'ioctl.KVM_SET_ONE_REG': K.KVM_SET_ONE_REG,
  };
  for (const f of ['serror_pending', 'serror_has_esr', 'ext_dabt_pending', 'pad', 'serror_esr', 'reserved']) {
    ours[`offsetof.merged.${f}`] = koffi.offsetof(KvmVcpuEventsMerged, f);
  }
  for (const f of [
    'serror_pending',
    'serror_has_esr',
    'ext_dabt_pending',
    'ext_iabt_pending',
    'ext_abt_has_esr',
    'pad',
    'serror_esr',
    'ext_abt_esr',
    'reserved',
  ]) {
    ours[`offsetof.ext_abt.${f}`] = koffi.offsetof(KvmVcpuEventsExtAbt, f);
  }
  for (const [name, value] of Object.entries(ours)) assert.equal(value, get(name), name);
  assert.equal(Object.keys(ours).length, c.size, 'every figure the C program prints is compared');

  // And the TypeScript constants the decoders use.
  assert.equal(K.KVM_RUN_SIZE_ARM64, get('sizeof.kvm_run'));
  assert.equal(K.KVM_RUN_EXIT_REASON_OFFSET, get('offsetof.kvm_run.exit_reason'));
  assert.equal(K.KVM_RUN_EXIT_UNION_OFFSET, get('offsetof.kvm_run.exit'));
  assert.equal(K.KVM_VCPU_EVENTS_SIZE, get('sizeof.kvm_vcpu_events_merged'));
});

test('ioctl numbers match the reference table (section 4)', () => {
  assert.equal(K.KVM_GET_API_VERSION, 0xae00);
  assert.equal(K.KVM_CHECK_EXTENSION, 0xae03);
  assert.equal(K.KVM_GET_VCPU_MMAP_SIZE, 0xae04);
  assert.equal(K.KVM_RUN, 0xae80);
  assert.equal(K.KVM_GET_VCPU_EVENTS, 0x8040ae9f);
  assert.equal(K.KVM_SET_VCPU_EVENTS, 0x4040aea0);
  assert.equal(K.KVM_ENABLE_CAP, 0x4068aea3);
  assert.equal(K.KVM_GET_ONE_REG, 0x4010aeab);
  assert.equal(K.KVM_SET_ONE_REG, 0x4010aeac);
});

test('exit reasons and capabilities match the reference (section 1)', () => {
  assert.equal(K.KVM_EXIT_MMIO, 6);
  assert.equal(K.KVM_EXIT_ARM_NISV, 28);
  assert.equal(K.KVM_EXIT_ARM_SEA, 41);
  assert.equal(K.KVM_CAP_ARM_NISV_TO_USER, 177);
  assert.equal(K.KVM_CAP_ARM_INJECT_EXT_DABT, 178);
  assert.equal(K.KVM_CAP_ARM_SEA_TO_USER, 245);
  assert.equal(K.KVM_EXIT_ARM_SEA_FLAG_GPA_VALID, 1n);
  // No constant names an IABT capability: its number is configuration.
  assert.deepEqual(
    Object.keys(K).filter((k) => /IABT/.test(k) && k.startsWith('KVM_CAP')),
    [],
  );
});

test('_IOC rejects fields that do not fit', () => {
  assert.throws(
    () => K.ioc(4, 0xae, 0, 0),
    (e) => K.isKvmError(e, 'SEAWALL_KVM_INVALID_ARGUMENT'),
  );
  assert.throws(
    () => K.ioc(1, 0x100, 0, 0),
    (e) => K.isKvmError(e, 'SEAWALL_KVM_INVALID_ARGUMENT'),
  );
  assert.throws(
    () => K.ioc(1, 0xae, 0x100, 0),
    (e) => K.isKvmError(e, 'SEAWALL_KVM_INVALID_ARGUMENT'),
  );
  assert.throws(
    () => K.ioc(1, 0xae, 0, 1 << 14),
    (e) => K.isKvmError(e, 'SEAWALL_KVM_INVALID_ARGUMENT'),
  );
});
