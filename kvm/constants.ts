/**
 * arm64 KVM UAPI numbers seawall relies on. Each figure is from
 * ../shared/reference/kvm-arm64-sea.md (section numbers cited) and is cross-checked by
 * test/kvm/layout.test.ts against a C program compiled from the same definitions.
 */

/** `kvm_run.exit_reason` values seawall handles (reference §1). */
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_ARM_NISV = 28;
export const KVM_EXIT_ARM_SEA = 41;
/**
 * A 64-byte single-copy-atomic access (LD64B/ST64B…) KVM cannot emulate, Linux 7.0+; its record
 * has the `arm_nisv` layout. seawall has no event for it, but it is an abort exit all the same.
 */
export const KVM_EXIT_ARM_LDST64B = 42;

/**
 * Exit reasons after which `ext_dabt_pending` / `ext_iabt_pending` may be set: the kernel's API
 * documentation (KVM_SET_VCPU_EVENTS, arm64) lists MMIO, ARM_NISV and ARM_LDST64B; the SEA
 * documentation and selftest inject after ARM_SEA (reference §1, §3).
 */
export const INJECTABLE_EXITS: ReadonlySet<number> = new Set([
  KVM_EXIT_MMIO,
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
  KVM_EXIT_ARM_LDST64B,
]);

/**
 * Capabilities with stable numbers. The instruction-abort / chosen-ESR capability of the posted
 * series has had three different numbers (241, 243, 245) and is deliberately absent: it comes
 * from configuration or from the plugin's HELLO, never from a constant (reference §1).
 */
export const KVM_CAP_ARM_NISV_TO_USER = 177;
export const KVM_CAP_ARM_INJECT_EXT_DABT = 178;
export const KVM_CAP_ARM_SEA_TO_USER = 245;

/** `kvm_run.arm_sea.flags` bit 0 (reference §2). There is no GVA-valid flag upstream. */
export const KVM_EXIT_ARM_SEA_FLAG_GPA_VALID = 1n;

/** `KVM_GET_API_VERSION` answers this on every kernel since 2.6.22. */
export const KVM_API_VERSION = 12;

/** `struct kvm_run` offsets (reference §2). */
export const KVM_RUN_EXIT_REASON_OFFSET = 8;
export const KVM_RUN_EXIT_UNION_OFFSET = 32;
/** sizeof(struct kvm_run) on arm64. */
export const KVM_RUN_SIZE_ARM64 = 2352;
/**
 * mmap length of a vCPU fd when /dev/kvm is not there to answer KVM_GET_VCPU_MMAP_SIZE: what
 * arm64 kernels with 4 KiB pages answer (6.1 and 7.3 measured, docs/real-kvm.md) — two pages,
 * kvm_run and the coalesced-MMIO ring. A host with 16 or 64 KiB pages answers two of its own
 * pages (`defaultVcpuMmapSize` in page-size.ts); a real host's figure always comes from the probe.
 */
export const KVM_RUN_DEFAULT_MMAP_SIZE = 8192;
/** Pages in a vCPU mapping on arm64: kvm_run, then the coalesced-MMIO ring (KVM_COALESCED_MMIO_PAGE_OFFSET 1). */
export const KVM_VCPU_MMAP_PAGES_ARM64 = 2;

/** sizeof(struct kvm_vcpu_events) on arm64, in both ABIs (reference §3). */
export const KVM_VCPU_EVENTS_SIZE = 64;

/** Exception classes in ESR_ELx.EC (reference §6). */
export const ESR_EC_IABT_LOW = 0x20;
export const ESR_EC_IABT_CUR = 0x21;
export const ESR_EC_DABT_LOW = 0x24;
export const ESR_EC_DABT_CUR = 0x25;
export const ESR_EC_SERROR = 0x2f;

/** Fault status codes (reference §6). */
export const FSC_SEA = 0x10;
export const FSC_SEA_WALK_FIRST = 0x13; // level -1
export const FSC_SEA_WALK_LAST = 0x17; // level 3
export const FSC_PARITY = 0x18;
export const FSC_PARITY_WALK_FIRST = 0x1b; // level -1
export const FSC_PARITY_WALK_LAST = 0x1f; // level 3

/** ISS occupies ESR bits [24:0]. */
export const ISS_MASK = 0x1ffffff;
