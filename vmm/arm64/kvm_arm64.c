/* KVM ioctls of the lane VMM: thin, errno-returning, nothing assumed about the host. */
#define _GNU_SOURCE

#include "kvm_arm64.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int rc(long r) { return r < 0 ? -errno : (int)r; }

int kvm_open(void) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -errno;
  if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
    close(fd);
    return -EPROTO;
  }
  return fd;
}

int kvm_check(int fd, long cap) { return rc(ioctl(fd, KVM_CHECK_EXTENSION, cap)); }

int kvm_create_vm(int kvm) { return rc(ioctl(kvm, KVM_CREATE_VM, 0)); }

int kvm_enable_cap(int vm, uint32_t cap) {
  struct kvm_enable_cap c;
  memset(&c, 0, sizeof c);
  c.cap = cap;
  return rc(ioctl(vm, KVM_ENABLE_CAP, &c));
}

int kvm_memslot(int vm, uint32_t slot, uint64_t gpa, uint64_t size, void *host) {
  struct kvm_userspace_memory_region r = {
      .slot = slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uintptr_t)host};
  return rc(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}

int kvm_vcpu(int vm, unsigned index, size_t mmap_size, void **run) {
  struct kvm_vcpu_init init;
  int r = rc(ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init));
  if (r < 0) return r;
  int fd = rc(ioctl(vm, KVM_CREATE_VCPU, (unsigned long)index));
  if (fd < 0) return fd;
  r = rc(ioctl(fd, KVM_ARM_VCPU_INIT, &init));
  if (r == 0) {
    /* The mapping is as long as KVM_GET_VCPU_MMAP_SIZE says (8192 on arm64: kvm_run plus the
     * coalesced-MMIO ring), never an assumed page. */
    void *p = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) r = -errno;
    else *run = p;
  }
  if (r < 0) {
    close(fd);
    return r;
  }
  return fd;
}

int kvm_get_reg(int vcpu, uint64_t id, uint64_t *value) {
  struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)value};
  return rc(ioctl(vcpu, KVM_GET_ONE_REG, &reg));
}

int kvm_set_reg(int vcpu, uint64_t id, uint64_t value) {
  struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)&value};
  return rc(ioctl(vcpu, KVM_SET_ONE_REG, &reg));
}

int kvm_set_events(int vcpu, const uint8_t image[64]) {
  /* The daemon's bytes exactly as received (docs/protocol.md §5.1): never re-encoded. */
  struct kvm_vcpu_events ev;
  _Static_assert(sizeof ev == 64, "arm64 struct kvm_vcpu_events is 64 bytes");
  memcpy(&ev, image, sizeof ev);
  return rc(ioctl(vcpu, KVM_SET_VCPU_EVENTS, &ev));
}
