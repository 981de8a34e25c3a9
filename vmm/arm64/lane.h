/*
 * The lane VMM's shared definitions: the guest memory map, the scenario numbers the guest and
 * the VMM agree on, and (in C only) the VMM's types. Included by guest.S, so the C part is fenced.
 */
#ifndef LANE_H
#define LANE_H

/* Guest physical map. RAM holds the guest code and the page the VMM poisons; everything else is
 * unbacked: LANE_PORT is served by the VMM, LANE_NO_DEVICE* are where the scenarios fault. */
#define LANE_RAM 0x40000000
#define LANE_RAM_SIZE 0x200000
#define LANE_POISON_OFFSET 0x100000
/* The peer VM's two poisoned pages: one its policy answers with an emulated abort, one with RESUME. */
#define LANE_POISON_INJECT_OFFSET 0x110000
#define LANE_POISON_RESUME_OFFSET 0x120000
#define LANE_PORT 0x9000000
#define LANE_PORT_SIZE 0x1000
/* The kernel selftest's unbacked address (external_aborts.c), and pages a policy can tell apart. */
#define LANE_NO_DEVICE 0x8000000

#define SCN_LDR 1
#define SCN_STR 2
#define SCN_LDP 3
#define SCN_STP 4
#define SCN_LDR_POST 5

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <pthread.h>

#include "seawall_plugin.h"

extern const unsigned char guest_start[], guest_end[];

/* One access the guest performs, and how the VMM treats the exit it causes. */
struct lane_step {
  const char *name;
  int scenario;  /* SCN_* */
  uint64_t addr; /* guest address of the access */
  /* 1: apply each image of the EINVAL list directly (not through the daemon) before the verdict. */
  int einval_probe;
  /* 1: pass the vCPU fd to a child process at the exit, before the verdict (peer.c). */
  int peer;
};

/* What one step produced, reported to the test as one JSON line. */
struct lane_result {
  const char *vm;
  unsigned vcpu;
  const struct lane_step *step;
  /* The exit KVM_RUN returned, read from kvm_run (or the SIGBUS siginfo). */
  uint32_t exit_reason;
  int run_errno;
  uint64_t f[4];     /* exit fields: mmio phys_addr,len,is_write,data | nisv esr_iss,fault_ipa | sigbus code,addr,lsb,gpa */
  uint8_t mmio_data[8];
  uint64_t pc;       /* the guest's PC at the exit: the access that faulted */
  int event_sent;    /* a seawall_handle_* call was made */
  int fell_back;
  struct seawall_verdict verdict;
  int apply_result;  /* 0 or -errno of KVM_SET_VCPU_EVENTS / the register writes */
  int reported;      /* the guest reported an exception */
  uint64_t vector, esr, far, elr;
  int finished;      /* the guest wrote "finished" */
  int line;          /* its step line was written (vcpu.c reports each step once) */
};

struct lane_vm;

struct lane_vcpu {
  struct lane_vm *vm;
  unsigned index;
  int fd;
  void *run; /* the kvm_run mapping */
  const struct lane_step *steps;
  unsigned nsteps, next;
  pthread_t thread;
  int stopped; /* KILL applied, or the guest stopped */
  int parked;  /* waiting on the port read for its next step */
  int running; /* a thread runs it (vm.c) */
  int in_loop; /* its thread is in the KVM_RUN loop and may be kicked (under the VM's kick_lock) */
  pthread_t self; /* that thread, as it named itself when it set in_loop */
};

struct lane_vm {
  const char *name;
  int fd;
  void *ram;
  struct seawall_plugin plugin;
  pthread_mutex_t plugin_lock; /* the plugin is not thread-safe (seawall_plugin.h) */
  int connected;
  /* Set by a KILL (a verdict, the out-of-vCPU SIGBUS's, or a late one): no vCPU of the VM runs
   * again. Read by vCPU threads while another thread sets it: accessed with __atomic builtins. */
  int killed;
  pthread_mutex_t kick_lock; /* guards the vCPUs' in_loop and the kicks of vm_kill */
  unsigned nvcpus;
  struct lane_vcpu vcpus[4];
};

/* Images the lane sends straight to KVM_SET_VCPU_EVENTS (einval_probe steps), from /einval.txt. */
struct einval_image {
  char name[48];
  uint8_t image[64];
};
extern struct einval_image einval_images[32];
extern unsigned einval_count;

/* vcpu.c */
/* SIGBUS (memory errors) and SIGUSR1 (the kick vm_kill sends a vCPU thread), both without
 * SA_RESTART so that KVM_RUN returns EINTR. */
void vcpu_signals_install(void);
/* Terminates the VM (docs/protocol.md §5.1 KILL): sets `killed`, and makes every vCPU thread in
 * KVM_RUN return (immediate_exit, and a SIGUSR1 kick) and stop. Calls no plugin function, so the
 * late-KILL callback may call it under the plugin's mutex. */
void vm_kill(struct lane_vm *vm);
int vm_killed(const struct lane_vm *vm);
/* Takes the SIGBUS the calling thread received, if any: 1 with its si_code, si_addr, si_addr_lsb. */
int vcpu_take_sigbus(int *code, void **addr, short *lsb);
/* Runs the vCPU's steps on a new thread; a vCPU parked by an earlier run goes on from there. */
int vcpu_start(struct lane_vcpu *c, const struct lane_step *steps, unsigned nsteps);
void vcpu_join(struct lane_vcpu *c);
/* peer.c: what another process can do with this vCPU's fd while it stands at an exit. */
void peer_probe(struct lane_vcpu *c, const char *step);
/* The page of guest RAM at `gpa`, translated the way a SIGBUS's si_addr is (for reports). */
uint64_t vm_gpa_of(const struct lane_vm *vm, const void *host);

#endif
#endif
