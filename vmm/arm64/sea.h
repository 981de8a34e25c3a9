/*
 * KVM_EXIT_ARM_SEA (exit 41, Linux 6.19+) read from a kvm_run page, and the FAR_EL1 an emulated
 * abort gets after an exit (docs/protocol.md §5.1). Pure functions of bytes, with no KVM call, so
 * they are checked on any host (test/kvm/arm-sea-exit.test.ts): under this lane's emulation no
 * kernel produces exit 41 (docs/real-kvm.md).
 */
#ifndef SEA_H
#define SEA_H

#include <stdint.h>

#include "seawall_plugin.h"

/* kvm_run.arm_sea as include/uapi/linux/kvm.h defines it (reference §2): flags, esr, gva, gpa,
 * each a u64, at 32, 40, 48 and 56 — the exit union starts at 32. The build's headers may predate
 * the record, so it is read by offset, little endian as arm64 Linux stores it. */
#define RUN_ARM_SEA_FLAGS 32
#define RUN_ARM_SEA_ESR 40
#define RUN_ARM_SEA_GVA 48
#define RUN_ARM_SEA_GPA 56
#define RUN_ARM_SEA_END 64

/* ESR bit 10, FnV: FAR not valid. For a SEA exit there is no GVA-valid flag: gva means something
 * only when the exit's own ESR has FnV clear. */
#define ESR_FNV (UINT64_C(1) << 10)

/* Fills `out` for vCPU `vcpu` from the first RUN_ARM_SEA_END bytes of a kvm_run page whose
 * exit_reason is KVM_EXIT_ARM_SEA, each field copied as the kernel left it. */
void sea_exit_read(const void *run, uint32_t vcpu, struct seawall_sea_exit *out);

/* FAR_EL1 for an INJECT_EMULATED after this SEA exit: gva when the exit's own ESR has FnV clear,
 * else 0. After an MMIO or NISV exit or a SIGBUS, FAR_EL1 is 0: the VMM knows no guest virtual
 * address there, and FAR_EL1 never holds a guest physical one (§5.1). */
uint64_t sea_exit_far(const struct seawall_sea_exit *e);

#endif
