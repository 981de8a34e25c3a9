/**
 * Raw struct layouts as koffi types — the lowest of the kvm/ layers. Field names are the
 * kernel's. test/kvm/layout.test.ts compiles the same definitions with gcc and compares every
 * size and offset, so these and the C structs cannot drift apart. Reference §2 and §3.
 */
import koffi from 'koffi';

/** `kvm_run.mmio` (KVM_EXIT_MMIO). */
export const KvmRunMmio = koffi.struct('seawall_kvm_run_mmio', {
  phys_addr: 'uint64_t',
  data: koffi.array('uint8_t', 8),
  len: 'uint32_t',
  is_write: 'uint8_t',
});

/** `kvm_run.arm_nisv` (KVM_EXIT_ARM_NISV). */
export const KvmRunArmNisv = koffi.struct('seawall_kvm_run_arm_nisv', {
  esr_iss: 'uint64_t',
  fault_ipa: 'uint64_t',
});

/** `kvm_run.arm_sea` (KVM_EXIT_ARM_SEA, Linux 6.19, merged field order). */
export const KvmRunArmSea = koffi.struct('seawall_kvm_run_arm_sea', {
  flags: 'uint64_t',
  esr: 'uint64_t',
  gva: 'uint64_t',
  gpa: 'uint64_t',
});

const KvmRunExit = koffi.union('seawall_kvm_run_exit', {
  mmio: KvmRunMmio,
  arm_nisv: KvmRunArmNisv,
  arm_sea: KvmRunArmSea,
  padding: koffi.array('char', 256),
});

/** arm64 `struct kvm_sync_regs`. */
const KvmSyncRegsArm64 = koffi.struct('seawall_kvm_sync_regs_arm64', { device_irq_level: 'uint64_t' });

/** arm64 `struct kvm_run` in full, so its size (2352) is checked too. */
export const KvmRun = koffi.struct('seawall_kvm_run', {
  request_interrupt_window: 'uint8_t',
  immediate_exit: 'uint8_t',
  padding1: koffi.array('uint8_t', 6),
  exit_reason: 'uint32_t',
  ready_for_interrupt_injection: 'uint8_t',
  if_flag: 'uint8_t',
  flags: 'uint16_t',
  cr8: 'uint64_t',
  apic_base: 'uint64_t',
  exit: KvmRunExit,
  kvm_valid_regs: 'uint64_t',
  kvm_dirty_regs: 'uint64_t',
  s: koffi.union('seawall_kvm_run_s', { regs: KvmSyncRegsArm64, padding: koffi.array('char', 2048) }),
});

/** `struct kvm_vcpu_events` on arm64 as merged through Linux 6.19 (reference §3a). */
export const KvmVcpuEventsMerged = koffi.struct('seawall_kvm_vcpu_events_merged', {
  serror_pending: 'uint8_t',
  serror_has_esr: 'uint8_t',
  ext_dabt_pending: 'uint8_t',
  pad: koffi.array('uint8_t', 5),
  serror_esr: 'uint64_t',
  reserved: koffi.array('uint32_t', 12),
});

/** `struct kvm_vcpu_events` with the posted instruction-abort / chosen-ESR fields (reference §3b). */
export const KvmVcpuEventsExtAbt = koffi.struct('seawall_kvm_vcpu_events_ext_abt', {
  serror_pending: 'uint8_t',
  serror_has_esr: 'uint8_t',
  ext_dabt_pending: 'uint8_t',
  ext_iabt_pending: 'uint8_t',
  ext_abt_has_esr: 'uint8_t',
  pad: koffi.array('uint8_t', 3),
  serror_esr: 'uint64_t',
  ext_abt_esr: 'uint64_t',
  reserved: koffi.array('uint32_t', 10),
});

/** Offset of a member nested in `kvm_run.exit` (the exit union). */
export function exitFieldOffset(record: 'mmio' | 'arm_nisv' | 'arm_sea', field: string): number {
  const inner = { mmio: KvmRunMmio, arm_nisv: KvmRunArmNisv, arm_sea: KvmRunArmSea }[record];
  return koffi.offsetof(KvmRun, 'exit') + koffi.offsetof(inner, field);
}
