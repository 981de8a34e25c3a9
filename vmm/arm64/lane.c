/*
 * seawall-lane: a minimal, real arm64 VMM that runs as /init of the lane's initramfs inside an
 * emulated arm64 machine with EL2, where /dev/kvm works. It creates small VMs running guest.S,
 * sends every exit it cannot serve to a seawall daemon on the host (through virtio-serial ports
 * that QEMU connects to the daemon's plugin socket), applies the verdicts, and reports what the
 * kernel did and what the guest saw to the test on the "lane-ctl" port. docs/real-kvm.md.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "boot.h"
#include "kvm_arm64.h"
#include "lane.h"
#include "report.h"
#include "vm.h"

struct einval_image einval_images[32];
unsigned einval_count;

#define POISON (LANE_RAM + LANE_POISON_OFFSET)
#define STEPS(a) (sizeof(a) / sizeof((a)[0]))

/* The built-in policy's VM: MMIO exits on vCPU 0, NISV exits on vCPU 1, at the same time. */
static const struct lane_step a0[] = {
    {"mmio-ldr", SCN_LDR, LANE_NO_DEVICE, 0, 1},
    {"mmio-str", SCN_STR, LANE_NO_DEVICE + 0x10, 0, 0},
    {"einval-then-mmio-ldr", SCN_LDR, LANE_NO_DEVICE + 0x20, 1, 0},
};
static const struct lane_step a1[] = {
    {"nisv-ldp", SCN_LDP, LANE_NO_DEVICE, 0, 1},
    {"nisv-stp", SCN_STP, LANE_NO_DEVICE + 0x40, 0, 0},
    {"nisv-ldr-post", SCN_LDR_POST, LANE_NO_DEVICE + 0xff8, 0, 0},
};
/* The test policy's VM: pages the policy tells apart (test/real-kvm/lane-policy.yaml). */
static const struct lane_step b0[] = {
    {"iabt-downgraded", SCN_LDP, LANE_NO_DEVICE + 0x10000, 0, 0},
    {"iabt-emulated-nisv", SCN_LDP, LANE_NO_DEVICE + 0x20000, 0, 0},
    {"iabt-emulated-mmio", SCN_LDR, LANE_NO_DEVICE + 0x20008, 0, 0},
    {"iabt-walk-emulated-nisv", SCN_LDP, LANE_NO_DEVICE + 0x40000, 0, 0},
    {"iabt-walk-emulated-mmio", SCN_LDR, LANE_NO_DEVICE + 0x40008, 0, 0},
    {"poison-ldr", SCN_LDR, POISON + 0x10, 0, 0},
    {"poison-str", SCN_STR, POISON + 0x28, 0, 0},
    {"kill", SCN_LDR, LANE_NO_DEVICE + 0x30000, 0, 0},
};
/* The peer VM, once lane-policy's kill is decided: an emulated abort after a SIGBUS, then a
 * SIGBUS its policy resumes, which stops the vCPU (it would fault again for ever). */
static const struct lane_step c0[] = {
    {"poison-walk-emulated", SCN_LDR, LANE_RAM + LANE_POISON_INJECT_OFFSET + 0x10, 0, 0},
    {"poison-resume", SCN_LDR, LANE_RAM + LANE_POISON_RESUME_OFFSET + 0x10, 0, 0},
};
static const struct lane_step deadline0[] = {{"deadline-nisv", SCN_LDP, LANE_NO_DEVICE + 0x80, 0, 0}};

static struct lane_vm vm_a = {.name = "lane-builtin"}, vm_b = {.name = "lane-policy"},
                      vm_c = {.name = "lane-policy-peer"};

static void load_einval(const char *path) {
  FILE *f = fopen(path, "r");
  char name[48], hex[160];
  while (f && einval_count < 32 && fscanf(f, "%47s %159s", name, hex) == 2) {
    struct einval_image *e = &einval_images[einval_count];
    snprintf(e->name, sizeof e->name, "%s", name);
    for (int i = 0; i < 64; i++) {
      unsigned b = 0;
      sscanf(hex + 2 * i, "%2x", &b);
      e->image[i] = (uint8_t)b;
    }
    einval_count++;
  }
  if (f) fclose(f);
}

static int fail(const char *what, int err) {
  report("{\"t\":\"error\",\"what\":\"%s\",\"errno\":%d}", what, -err);
  return 1;
}

/* Poisons the page at `offset` of a VM's RAM as a memory error would, and reports any SIGBUS the
 * kernel sends for it right away (7.x does, during the madvise). */
static int poison(struct lane_vm *vm, size_t offset) {
  long page = sysconf(_SC_PAGESIZE);
  char *p = (char *)vm->ram + offset;
  memset(p, 0xa5, (size_t)page);
  int r = madvise(p, (size_t)page, MADV_HWPOISON) == 0 ? 0 : -errno;
  int code;
  void *addr;
  short lsb;
  int got = vcpu_take_sigbus(&code, &addr, &lsb);
  report("{\"t\":\"poison\",\"vm\":\"%s\",\"gpa\":\"0x%llx\",\"page\":%ld,\"result\":%d,\"sigbus\":%d,\"code\":%d,"
         "\"lsb\":%d}",
         vm->name, (unsigned long long)vm_gpa_of(vm, p), page, r, got, got ? code : 0, got ? lsb : 0);
  if (got) {
    /* Taken by this thread, not a vCPU's: no vCPU stalls on it, so it is reported as AO (§4.4). */
    struct seawall_sigbus e = {.vcpu = SEAWALL_NO_VCPU, .si_code = SEAWALL_BUS_MCEERR_AO, .addr_lsb = (uint16_t)lsb,
                               .gpa = vm_gpa_of(vm, addr)};
    struct seawall_verdict v;
    int fb = seawall_handle_sigbus(&vm->plugin, &e, &v);
    report("{\"t\":\"sigbus-outside-vcpu\",\"vm\":\"%s\",\"fallback\":%d,\"action\":\"%s\"}", vm->name, fb,
           seawall_action_name(v.action));
    /* A KILL ends the VM here: none of its vCPUs runs again (§5.1). No vCPU waits on this event,
     * so there is nothing to inject. */
    if (v.action == SEAWALL_ACTION_KILL) vm_kill(vm);
  }
  return r;
}

static int lane(void) {
  struct utsname u;
  uname(&u);
  int kvm = kvm_open();
  if (kvm < 0) return fail("open /dev/kvm", kvm);
  int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  int mmap_errno = mmap_size < 0 ? errno : EPROTO; /* before report() and the checks below */
  report("{\"t\":\"host\",\"release\":\"%s\",\"page\":%ld,\"mmapSize\":%d,\"runSize\":%zu,\"check\":{\"245\":%d,"
         "\"177\":%d,\"178\":%d}}",
         u.release, sysconf(_SC_PAGESIZE), mmap_size, sizeof(struct kvm_run), kvm_check(kvm, KVM_CAP_ARM_SEA_TO_USER),
         kvm_check(kvm, KVM_CAP_ARM_NISV_TO_USER), kvm_check(kvm, KVM_CAP_ARM_INJECT_EXT_DABT));
  if (mmap_size < (int)sizeof(struct kvm_run))
    return fail("KVM_GET_VCPU_MMAP_SIZE", -mmap_errno);
  load_einval("/einval.txt");
  vcpu_signals_install();

  int r = vm_create(&vm_a, kvm, (size_t)mmap_size, 2, "seawall-a");
  if (r) return fail("vm lane-builtin", r);
  const struct lane_step *sa[] = {a0, a1};
  const unsigned na[] = {STEPS(a0), STEPS(a1)};
  vm_run(&vm_a, sa, na);

  if ((r = vm_create(&vm_b, kvm, (size_t)mmap_size, 1, "seawall-b"))) return fail("vm lane-policy", r);
  if ((r = vm_create(&vm_c, kvm, (size_t)mmap_size, 1, "seawall-c"))) return fail("vm lane-policy-peer", r);
  poison(&vm_b, LANE_POISON_OFFSET);
  const struct lane_step *sb[] = {b0};
  const unsigned nb[] = {STEPS(b0)};
  vm_run(&vm_b, sb, nb);
  /* KILL: this VM is done; the VMM process goes on serving lane-policy-peer, so the daemon's
   * enforcement sees the session end while its process still serves another VM. */
  vm_close(&vm_b, SEAWALL_GOODBYE_VM_EXITING);
  if ((r = report_wait("killed", 60000))) return fail("wait killed", r);
  poison(&vm_c, LANE_POISON_INJECT_OFFSET);
  poison(&vm_c, LANE_POISON_RESUME_OFFSET);
  const struct lane_step *sc[] = {c0};
  const unsigned nc[] = {STEPS(c0)};
  vm_run(&vm_c, sc, nc);
  vm_close(&vm_c, SEAWALL_GOODBYE_VM_EXITING);

  /* The deadline, for real: the test stops the daemon (SIGSTOP) before this exit. */
  if ((r = report_wait("daemon-stopped", 60000))) return fail("wait daemon-stopped", r);
  vm_a.plugin.deadline_ms = 1000;
  const struct lane_step *sd[] = {deadline0, NULL};
  const unsigned nd[] = {STEPS(deadline0), 0};
  vm_run(&vm_a, sd, nd);
  if ((r = report_wait("daemon-resumed", 60000))) return fail("wait daemon-resumed", r);
  /* The daemon, resumed, reads the event it had and answers late: the plugin drops that verdict
   * and forgets its kept copy (docs/protocol.md §9). */
  for (int i = 0; i < 100 && vm_a.plugin.late_verdicts == 0 && vm_a.plugin.fd >= 0; i++) seawall_poll(&vm_a.plugin, 200);
  vm_close(&vm_a, SEAWALL_GOODBYE_VM_EXITING);
  report("{\"t\":\"done\"}");
  return 0;
}

int main(void) {
  if (getpid() == 1) boot_mounts();
  int modules = boot_modules("/modules.list");
  int ctl = boot_open_port("lane-ctl", 10000);
  if (ctl >= 0) report_open(ctl);
  report("{\"t\":\"boot\",\"modules\":%d,\"ctl\":%d}", modules, ctl < 0 ? ctl : 0);
  int status = ctl < 0 ? 1 : lane();
  boot_poweroff();
  return status;
}
