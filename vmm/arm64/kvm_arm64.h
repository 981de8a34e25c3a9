/*
 * The few KVM calls the lane VMM makes, each returning 0 / a value or -errno
 * (Documentation/virt/kvm/api.rst). Numbers newer than the build's kernel headers are defined
 * here with their upstream values.
 */
#ifndef KVM_ARM64_H
#define KVM_ARM64_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#ifndef KVM_EXIT_ARM_SEA
#define KVM_EXIT_ARM_SEA 41
#endif
#ifndef KVM_EXIT_ARM_LDST64B
#define KVM_EXIT_ARM_LDST64B 42
#endif
#ifndef KVM_CAP_ARM_SEA_TO_USER
#define KVM_CAP_ARM_SEA_TO_USER 245
#endif

/* kvm_run.arm_sea's offsets are in sea.h. */

int kvm_open(void);
int kvm_check(int fd, long cap);
int kvm_create_vm(int kvm);
int kvm_enable_cap(int vm, uint32_t cap);
int kvm_memslot(int vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host);
/* Creates vCPU `index` with the preferred target and maps its kvm_run (`mmap_size` bytes). */
int kvm_vcpu(int vm, unsigned index, size_t mmap_size, void **run);
int kvm_get_reg(int vcpu, uint64_t id, uint64_t *value);
int kvm_set_reg(int vcpu, uint64_t id, uint64_t value);
int kvm_set_events(int vcpu, const uint8_t image[64]);

/* Register ids for KVM_{GET,SET}_ONE_REG (arch/arm64/include/uapi/asm/kvm.h). */
#define REG_CORE(field)                                                                            \
  (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))
#define REG_PC REG_CORE(regs.pc)
#define REG_PSTATE REG_CORE(regs.pstate)
#define REG_ELR_EL1 REG_CORE(elr_el1)
#define REG_SPSR_EL1 REG_CORE(spsr[KVM_SPSR_EL1])
#define REG_ESR_EL1 ARM64_SYS_REG(3, 0, 5, 2, 0)
#define REG_FAR_EL1 ARM64_SYS_REG(3, 0, 6, 0, 0)
#define REG_VBAR_EL1 ARM64_SYS_REG(3, 0, 12, 0, 0)

#endif
