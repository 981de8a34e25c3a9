/*
 * The vCPU thread: a real KVM_RUN loop. Exits the VMM cannot serve (MMIO with no device, NISV,
 * SEA) and memory-error SIGBUSes go to the daemon through the plugin; the verdict is applied on
 * this thread before the next KVM_RUN — the kernel accepts vCPU ioctls only from the VM's own
 * process, and abort injection only right after the exit it answers (docs/protocol.md §5).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_arm64.h"
#include "lane.h"
#include "report.h"
#include "sea.h"

/* The exit union of struct kvm_run starts at 32 (reference §2): sea.h's offsets rest on it. */
_Static_assert(offsetof(struct kvm_run, mmio.phys_addr) == 32, "kvm_run's exit union is at 32");

/* What the SIGBUS handler saw on this thread; read after KVM_RUN returns EINTR. */
static __thread volatile sig_atomic_t sigbus_pending;
static __thread int sigbus_code;
static __thread void *sigbus_addr;
static __thread short sigbus_lsb;

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  sigbus_code = si->si_code;
  sigbus_addr = si->si_addr;
  sigbus_lsb = si->si_addr_lsb;
  sigbus_pending = 1;
}

static void on_kick(int sig) { (void)sig; }

void vcpu_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: KVM_RUN must come back with EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, NULL);
  struct sigaction kick;
  memset(&kick, 0, sizeof kick);
  kick.sa_handler = on_kick;
  sigemptyset(&kick.sa_mask);
  sigaction(SIGUSR1, &kick, NULL);
}

int vm_killed(const struct lane_vm *vm) { return __atomic_load_n(&vm->killed, __ATOMIC_SEQ_CST); }

void vm_kill(struct lane_vm *vm) {
  __atomic_store_n(&vm->killed, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&vm->kick_lock);
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    struct lane_vcpu *c = &vm->vcpus[i];
    if (!c->in_loop) continue;
    /* immediate_exit covers a thread between its check of `killed` and KVM_RUN, the signal one
     * already in the guest (Documentation/virt/kvm/api.rst, immediate_exit). */
    __atomic_store_n(&((struct kvm_run *)c->run)->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (!pthread_equal(c->self, pthread_self())) pthread_kill(c->self, SIGUSR1);
  }
  pthread_mutex_unlock(&vm->kick_lock);
}

int vcpu_take_sigbus(int *code, void **addr, short *lsb) {
  if (!sigbus_pending) return 0;
  sigbus_pending = 0;
  *code = sigbus_code;
  *addr = sigbus_addr;
  *lsb = sigbus_lsb;
  return 1;
}

uint64_t vm_gpa_of(const struct lane_vm *vm, const void *host) {
  const char *base = vm->ram, *p = host;
  if (p < base || p >= base + LANE_RAM_SIZE) return SEAWALL_NO_GPA;
  return LANE_RAM + (uint64_t)(p - base);
}

static struct kvm_run *run_of(struct lane_vcpu *c) { return c->run; }

/* Register-level abort, as docs/protocol.md §5.1 INJECT_EMULATED says and QEMU does for SEAs. */
static int emulate_abort(struct lane_vcpu *c, uint64_t esr, uint64_t far, int mmio_pending) {
  uint64_t pc, pstate, vbar;
  int r = kvm_get_reg(c->fd, REG_PC, &pc);
  if (!r) r = kvm_get_reg(c->fd, REG_PSTATE, &pstate);
  if (!r) r = kvm_get_reg(c->fd, REG_VBAR_EL1, &vbar);
  if (r) return r;
  if (mmio_pending) {
    /* KVM completes a pending MMIO access at the next KVM_RUN by advancing PC past it, which
     * would skip the first instruction of the vector. Let it complete now, returning at once. */
    struct kvm_run *run = run_of(c);
    memset(run->mmio.data, 0, sizeof run->mmio.data);
    run->immediate_exit = 1;
    int rr = ioctl(c->fd, KVM_RUN, 0);
    run->immediate_exit = (uint8_t)vm_killed(c->vm); /* a kill's request stays */
    if (rr == 0 || errno != EINTR) return rr == 0 ? -EPROTO : -errno;
  }
  unsigned el = (unsigned)(pstate >> 2) & 3;
  unsigned ec = (unsigned)(esr >> 26) & 0x3f;
  if (el == 1 && (ec == 0x24 || ec == 0x20)) esr = (esr & ~(UINT64_C(0x3f) << 26)) | ((uint64_t)(ec + 1) << 26);
  r = kvm_set_reg(c->fd, REG_ESR_EL1, esr);
  if (!r) r = kvm_set_reg(c->fd, REG_FAR_EL1, far);
  if (!r) r = kvm_set_reg(c->fd, REG_ELR_EL1, pc);
  if (!r) r = kvm_set_reg(c->fd, REG_SPSR_EL1, pstate);
  /* EL1h with D, A, I, F masked; the synchronous vector for where the guest was: current EL with
   * SP_EL0 (EL1t, M[0] clear) +0x000, with SP_EL1 (EL1h) +0x200, lower EL in AArch64 +0x400, in
   * AArch32 (M[4], nRW) +0x600. */
  uint64_t vector = el == 1 ? ((pstate & 1) ? 0x200 : 0x000) : ((pstate & 0x10) ? 0x600 : 0x400);
  if (!r) r = kvm_set_reg(c->fd, REG_PSTATE, 0x3c5);
  if (!r) r = kvm_set_reg(c->fd, REG_PC, vbar + vector);
  return r;
}

/* `far`: FAR_EL1 for an INJECT_EMULATED — sea_exit_far() after a SEA exit, 0 after any other
 * (sea.h): never the exit's guest physical address, whatever FnV the verdict's ESR has. */
static void apply(struct lane_vcpu *c, struct lane_result *res, uint64_t far, int mmio_pending) {
  struct seawall_verdict *v = &res->verdict;
  switch (v->action) {
  case SEAWALL_ACTION_INJECT:
    res->apply_result = kvm_set_events(c->fd, v->vcpu_events);
    break;
  case SEAWALL_ACTION_INJECT_EMULATED:
    res->apply_result = emulate_abort(c, v->esr, far, mmio_pending);
    break;
  case SEAWALL_ACTION_KILL:
    /* Terminating the VM is the VMM's job (§5.1): none of its vCPUs runs again, and the VM's
     * session says GOODBYE VM_EXITING once its threads are joined. */
    c->stopped = 1;
    vm_kill(c->vm);
    break;
  default: /* RESUME: an unserved MMIO load reads zeros */
    if (mmio_pending) memset(run_of(c)->mmio.data, 0, 8);
    break;
  }
  if (v->source == SEAWALL_FROM_DAEMON && v->action != SEAWALL_ACTION_KILL &&
      v->action != SEAWALL_ACTION_RESUME) {
    pthread_mutex_lock(&c->vm->plugin_lock);
    seawall_send_applied(&c->vm->plugin, v->seq, res->apply_result);
    pthread_mutex_unlock(&c->vm->plugin_lock);
  }
}

/* The step's line, once: when the guest finishes it, or when the vCPU stops inside it. */
static void report_step(struct lane_result *r) {
  if (r->step == NULL || r->line) return;
  r->line = 1;
  report_result(r);
}

static void probe_einval(struct lane_vcpu *c) {
  for (unsigned i = 0; i < einval_count; i++) {
    int r = kvm_set_events(c->fd, einval_images[i].image);
    report("{\"t\":\"einval\",\"vm\":\"%s\",\"name\":\"%s\",\"result\":%d}", c->vm->name, einval_images[i].name, r);
  }
}

/* An exit the VMM has no device for: the daemon decides (the fields are kvm_run's own). */
static void on_abort_exit(struct lane_vcpu *c, struct lane_result *res) {
  struct kvm_run *run = run_of(c);
  struct lane_vm *vm = c->vm;
  int mmio = run->exit_reason == KVM_EXIT_MMIO;
  kvm_get_reg(c->fd, REG_PC, &res->pc);
  if (c->steps[c->next - 1].einval_probe) probe_einval(c);
  if (c->steps[c->next - 1].peer) peer_probe(c, c->steps[c->next - 1].name);
  pthread_mutex_lock(&vm->plugin_lock);
  if (mmio) {
    struct seawall_mmio_exit e = {.vcpu = c->index, .phys_addr = run->mmio.phys_addr, .len = run->mmio.len,
                                  .is_write = run->mmio.is_write};
    /* For a read, kvm_run's data still holds the previous exit's bytes: the event carries zeros. */
    if (e.is_write) memcpy(e.data, run->mmio.data, 8);
    res->f[0] = e.phys_addr, res->f[1] = e.len, res->f[2] = e.is_write;
    memcpy(&res->f[3], e.data, 8);
    res->fell_back = seawall_handle_mmio(&vm->plugin, &e, &res->verdict);
  } else {
    struct seawall_nisv_exit e = {.vcpu = c->index, .esr_iss = run->arm_nisv.esr_iss,
                                  .fault_ipa = run->arm_nisv.fault_ipa};
    res->f[0] = e.esr_iss, res->f[1] = e.fault_ipa;
    res->fell_back = seawall_handle_nisv(&vm->plugin, &e, &res->verdict);
  }
  pthread_mutex_unlock(&vm->plugin_lock);
  res->event_sent = 1;
  apply(c, res, 0, mmio); /* FAR_EL1 0: an MMIO or NISV exit gives a guest physical address only */
}

/*
 * KVM_EXIT_ARM_SEA (Linux 6.19+, with KVM_CAP_ARM_SEA_TO_USER enabled, vm.c): a synchronous
 * external abort KVM hands to userspace. The worked example for VMM authors: the record is read
 * from kvm_run at the offsets of sea.h, passed to the daemon as EVENT_SEA, and the verdict applied
 * as after the other exits; KVM allows ext_dabt_pending after this exit, and an emulated abort
 * gets FAR_EL1 = gva only when the exit's own ESR has FnV clear (sea_exit_far).
 * Not reached in the lane: under QEMU's emulation an L2 guest's external abort goes straight to
 * its own EL1, so L1 KVM never exits with 41 (docs/real-kvm.md). sea.c is checked on the host
 * instead (test/kvm/arm-sea-exit.test.ts).
 */
static void on_sea_exit(struct lane_vcpu *c, struct lane_result *res) {
  struct seawall_sea_exit e;
  sea_exit_read(run_of(c), c->index, &e);
  kvm_get_reg(c->fd, REG_PC, &res->pc);
  res->f[0] = e.kvm_flags, res->f[1] = e.esr, res->f[2] = e.gva, res->f[3] = e.gpa;
  pthread_mutex_lock(&c->vm->plugin_lock);
  res->fell_back = seawall_handle_sea(&c->vm->plugin, &e, &res->verdict);
  pthread_mutex_unlock(&c->vm->plugin_lock);
  res->event_sent = 1;
  apply(c, res, sea_exit_far(&e), 0);
}

static void on_sigbus_exit(struct lane_vcpu *c, struct lane_result *res) {
  sigbus_pending = 0;
  kvm_get_reg(c->fd, REG_PC, &res->pc);
  uint64_t gpa = vm_gpa_of(c->vm, sigbus_addr);
  struct seawall_sigbus e = {.vcpu = sigbus_code == BUS_MCEERR_AR ? c->index : SEAWALL_NO_VCPU,
                             .si_code = (uint16_t)sigbus_code, .addr_lsb = (uint16_t)sigbus_lsb, .gpa = gpa};
  res->f[0] = (uint64_t)sigbus_code, res->f[1] = (uintptr_t)sigbus_addr, res->f[2] = (uint64_t)sigbus_lsb;
  res->f[3] = gpa;
  pthread_mutex_lock(&c->vm->plugin_lock);
  res->fell_back = seawall_handle_sigbus(&c->vm->plugin, &e, &res->verdict);
  pthread_mutex_unlock(&c->vm->plugin_lock);
  res->event_sent = 1;
  if (res->verdict.action == SEAWALL_ACTION_RESUME && sigbus_code == BUS_MCEERR_AR) {
    /* Resuming would run into the same poison forever: this step ends here. */
    c->stopped = 1;
    return;
  }
  apply(c, res, 0, 0); /* FAR_EL1 0: a SIGBUS gives no guest virtual address */
}

/* The VMM-served port (lane.h): scenarios out, reports in. Returns 1 when the vCPU parks. */
static int on_port(struct lane_vcpu *c, struct lane_result *res) {
  struct kvm_run *run = run_of(c);
  uint64_t off = run->mmio.phys_addr - LANE_PORT, val;
  memcpy(&val, run->mmio.data, 8);
  if (!run->mmio.is_write) {
    uint64_t out = 0;
    if (off == 0) {
      if (c->next == c->nsteps) return 1; /* parked on this read until the next phase */
      memset(res, 0, sizeof *res);
      res->vm = c->vm->name;
      res->vcpu = c->index;
      res->step = &c->steps[c->next++];
      out = (uint64_t)res->step->scenario;
    } else if (off == 8 && c->next > 0) {
      out = c->steps[c->next - 1].addr;
    }
    memcpy(run->mmio.data, &out, 8);
    return 0;
  }
  switch (off) {
  case 16:
    res->finished = 1;
    report_step(res);
    break;
  case 24:
    c->stopped = 1;
    break;
  case 32: res->vector = val; break;
  case 40: res->esr = val; break;
  case 48: res->far = val; break;
  case 56: res->elr = val, res->reported = 1; break;
  default: break;
  }
  return 0;
}

static int should_stop(struct lane_vcpu *c) { return c->stopped || vm_killed(c->vm); }

static void vcpu_loop(struct lane_vcpu *c) {
  struct kvm_run *run = run_of(c);
  static __thread struct lane_result res;
  if (c->parked) {
    c->parked = 0;
    if (on_port(c, &res)) {
      c->parked = 1;
      return;
    }
  }
  while (!should_stop(c)) {
    int r = ioctl(c->fd, KVM_RUN, 0);
    if (r < 0) {
      int err = errno;
      if (err == EINTR && sigbus_pending) {
        res.exit_reason = run->exit_reason;
        res.run_errno = err;
        on_sigbus_exit(c, &res);
        continue;
      }
      if (err == EINTR) continue; /* a kick (vm_kill) or another signal: the loop's test decides */
      res.run_errno = err;
      report("{\"t\":\"error\",\"vm\":\"%s\",\"vcpu\":%u,\"what\":\"KVM_RUN\",\"errno\":%d}", c->vm->name, c->index,
             err);
      c->stopped = 1;
      break;
    }
    uint32_t exit = run->exit_reason;
    if (exit == KVM_EXIT_MMIO && run->mmio.phys_addr >= LANE_PORT &&
        run->mmio.phys_addr < LANE_PORT + LANE_PORT_SIZE) {
      if (on_port(c, &res)) {
        c->parked = 1;
        return;
      }
      continue;
    }
    res.exit_reason = exit;
    res.run_errno = 0;
    switch (exit) {
    case KVM_EXIT_MMIO:
    case KVM_EXIT_ARM_NISV:
      on_abort_exit(c, &res);
      break;
    case KVM_EXIT_ARM_SEA:
      on_sea_exit(c, &res);
      break;
    default:
      report("{\"t\":\"error\",\"vm\":\"%s\",\"vcpu\":%u,\"what\":\"exit\",\"exit\":%u}", c->vm->name, c->index, exit);
      c->stopped = 1;
      break;
    }
  }
  /* Stopped inside a step (a KILL, RESUME after an action-required SIGBUS, an error): its line,
   * with finished 0, says so. */
  report_step(&res);
}

static void *vcpu_main(void *arg) {
  struct lane_vcpu *c = arg;
  pthread_mutex_lock(&c->vm->kick_lock);
  c->self = pthread_self(); /* not c->thread: pthread_create may not have stored it yet */
  c->in_loop = 1;
  pthread_mutex_unlock(&c->vm->kick_lock);
  vcpu_loop(c);
  pthread_mutex_lock(&c->vm->kick_lock);
  c->in_loop = 0;
  pthread_mutex_unlock(&c->vm->kick_lock);
  return NULL;
}

int vcpu_start(struct lane_vcpu *c, const struct lane_step *steps, unsigned nsteps) {
  c->steps = steps;
  c->nsteps = nsteps;
  c->next = 0;
  return -pthread_create(&c->thread, NULL, vcpu_main, c);
}

void vcpu_join(struct lane_vcpu *c) { pthread_join(c->thread, NULL); }
