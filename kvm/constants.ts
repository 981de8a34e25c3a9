/**
 * arm64 KVM UAPI numbers seawall relies on. Each figure is from
 * ../shared/reference/kvm-arm64-sea.md (section numbers cited) and is cross-checked by
 * test/kvm/layout.test.ts against a C program compiled from the same definitions.
 */

/** `kvm_run.exit_reason` values seawall handles (reference §1). */
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_ARM_NISV = 28;
export const KVM_EXIT_ARM_SEA = 41;

/** Exit reasons after which `ext_dabt_pending` / `ext_iabt_pending` may be set (reference §3). */
export const INJECTABLE_EXITS: ReadonlySet<number> = new Set([
  KVM_EXIT_MMIO,
  KVM_EXIT_ARM_NISV,
  KVM_EXIT_ARM_SEA,
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
 * mmap length used for a vCPU's kvm_run page when /dev/kvm is not there to answer
 * KVM_GET_VCPU_MMAP_SIZE (one 4 KiB page covers struct kvm_run; arm64 has no extra pages there).
 */
export const KVM_RUN_DEFAULT_MMAP_SIZE = 4096;

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
