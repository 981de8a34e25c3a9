/*
 * One KVM VM of the lane VMM: its RAM with the guest copied in, its vCPUs, and its plugin
 * session to the daemon over a virtio-serial port. HELLO's capabilities are what KVM answered
 * on this host (KVM_CHECK_EXTENSION on the VM fd, KVM_ENABLE_CAP), never assumed.
 */
#define _GNU_SOURCE

#include "vm.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot.h"
#include "kvm_arm64.h"
#include "report.h"

/* KVM_CAP_ARM_INJECT_SERROR_ESR: the host has RAS and lets userspace choose an ESR
 * (Documentation/virt/kvm/api.rst, KVM_SET_VCPU_EVENTS on arm64). */
#define CAP_INJECT_SERROR_ESR 158

static uint32_t probe_caps(struct lane_vm *vm) {
  uint32_t caps = SEAWALL_CAP_EMULATE_ABORT; /* this VMM writes ESR/FAR/ELR itself (vcpu.c) */
  int sea = kvm_check(vm->fd, KVM_CAP_ARM_SEA_TO_USER);
  int sea_enable = sea > 0 ? kvm_enable_cap(vm->fd, KVM_CAP_ARM_SEA_TO_USER) : -ENOTSUP;
  int nisv = kvm_check(vm->fd, KVM_CAP_ARM_NISV_TO_USER);
  int nisv_enable = nisv > 0 ? kvm_enable_cap(vm->fd, KVM_CAP_ARM_NISV_TO_USER) : -ENOTSUP;
  int dabt = kvm_check(vm->fd, KVM_CAP_ARM_INJECT_EXT_DABT);
  int ras = kvm_check(vm->fd, CAP_INJECT_SERROR_ESR);
  if (sea > 0 && sea_enable == 0) caps |= SEAWALL_CAP_SEA_TO_USER;
  if (nisv > 0 && nisv_enable == 0) caps |= SEAWALL_CAP_NISV_TO_USER;
  if (dabt > 0) caps |= SEAWALL_CAP_INJECT_EXT_DABT;
  if (ras > 0) caps |= SEAWALL_CAP_RAS;
  report("{\"t\":\"caps\",\"vm\":\"%s\",\"check\":{\"245\":%d,\"177\":%d,\"178\":%d,\"158\":%d},"
         "\"enable\":{\"245\":%d,\"177\":%d},\"hello\":%u}",
         vm->name, sea, nisv, dabt, ras, sea_enable, nisv_enable, caps);
  return caps;
}

/* A KILL that came after the fallback answered its exit: the daemon enforces it all the same, so
 * the plugin hands it to the VMM (docs/protocol.md §3 rule 4, §9 rule 4). Runs inside whichever
 * plugin call read it, under plugin_lock: it only reports and stops the VM's vCPUs. */
static void on_late_kill(void *ctx, const struct seawall_verdict *kill) {
  struct lane_vm *vm = ctx;
  report("{\"t\":\"late-kill\",\"vm\":\"%s\",\"seq\":%u,\"grace\":%u}", vm->name, kill->seq, kill->grace_ms);
  vm_kill(vm);
}

int vm_create(struct lane_vm *vm, int kvm, size_t mmap_size, unsigned nvcpus, const char *port) {
  vm->nvcpus = nvcpus;
  /* Generous: under emulation on a loaded host a verdict can take a while; the deadline phase
   * shortens it. */
  seawall_init(&vm->plugin, 10000, 20000, SEAWALL_FALLBACK_INJECT);
  seawall_on_late_kill(&vm->plugin, on_late_kill, vm);
  pthread_mutex_init(&vm->plugin_lock, NULL);
  pthread_mutex_init(&vm->kick_lock, NULL);
  vm->fd = kvm_create_vm(kvm);
  if (vm->fd < 0) return vm->fd;
  vm->ram = mmap(NULL, LANE_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (vm->ram == MAP_FAILED) return -errno;
  memcpy(vm->ram, guest_start, (size_t)(guest_end - guest_start));
  int r = kvm_memslot(vm->fd, 0, LANE_RAM, LANE_RAM_SIZE, vm->ram);
  if (r) return r;
  uint32_t caps = probe_caps(vm);
  for (unsigned i = 0; i < nvcpus; i++) {
    struct lane_vcpu *c = &vm->vcpus[i];
    c->vm = vm;
    c->index = i;
    c->fd = kvm_vcpu(vm->fd, i, mmap_size, &c->run);
    if (c->fd < 0) return c->fd;
    r = kvm_set_reg(c->fd, REG_PC, LANE_RAM);
    if (r) return r;
  }
  int fd = boot_open_port(port, 10000);
  if (fd < 0) return fd;
  const struct seawall_label labels[] = {{"lane", "real-kvm"}};
  const struct seawall_hello hello = {.caps = caps, .vmm_pid = (uint32_t)getpid(), .vcpu_count = nvcpus,
                                      .ext_abt_esr_cap = 0, .vm_id = vm->name, .labels = labels, .label_count = 1};
  r = seawall_connect_fd(&vm->plugin, fd, &hello);
  vm->connected = r == 0;
  report("{\"t\":\"connect\",\"vm\":\"%s\",\"port\":\"%s\",\"result\":%d,\"session\":%llu,\"code\":%u}", vm->name,
         port, r, (unsigned long long)vm->plugin.welcome.session_id, vm->plugin.last_code);
  return r;
}

int vm_run(struct lane_vm *vm, const struct lane_step *const *steps, const unsigned *nsteps) {
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    if (vm_killed(vm) || vm->vcpus[i].stopped || nsteps[i] == 0) continue;
    int r = vcpu_start(&vm->vcpus[i], steps[i], nsteps[i]);
    if (r) return r;
    vm->vcpus[i].running = 1;
  }
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    if (!vm->vcpus[i].running) continue;
    vcpu_join(&vm->vcpus[i]);
    vm->vcpus[i].running = 0;
  }
  return 0;
}

void vm_close(struct lane_vm *vm, uint16_t reason) {
  seawall_close(&vm->plugin, reason);
  size_t kept = 0; /* events still waiting for replay; a late verdict empties its slot */
  for (size_t i = 0; i < vm->plugin.kept_count; i++)
    kept += vm->plugin.kept[(vm->plugin.kept_head + i) % SEAWALL_REPLAY_MAX].len != 0;
  report("{\"t\":\"closed\",\"vm\":\"%s\",\"killed\":%d,\"replayed\":%llu,\"late\":%llu,\"kept\":%zu}", vm->name,
         vm_killed(vm), (unsigned long long)vm->plugin.replayed, (unsigned long long)vm->plugin.late_verdicts,
         kept);
}
