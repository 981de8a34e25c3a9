/*
 * seawall C plugin example: sends the kernel's sea_to_user selftest exit
 * (tools/testing/selftests/kvm/arm64/sea_to_user.c) to the daemon and prints the verdict as one line:
 *
 *   <ACTION> <128 hex digits of vcpu_events> <daemon|fallback>
 *
 * usage: example SOCKET [--deadline-ms N] [--reconnect]
 *   --reconnect: after a fallback, say GOODBYE, connect again and replay the kept event (§9);
 *                prints "replayed N" on stderr.
 *
 * A real VMM does the same on its vCPU thread with the exit KVM_RUN returned, and then applies
 * the verdict there: memcpy(&ev, v.vcpu_events, 64); ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev).
 * It may also let the daemon read each exit from the kernel's kvm_run page (§9a): once per vCPU,
 * where it created it, seawall_attach_vcpu(&plugin, index, vcpu_fd); the library attaches it in
 * this session and again after every reconnect, and the fd stays the VMM's until
 * seawall_detach_vcpu or seawall_close. Where the VMM reconnects, it also calls
 * seawall_reattach(&plugin) when seawall_reattach_due(&plugin) says so: that attaches again the
 * vCPUs a closed attach connection lost. This example has no vCPU to attach.
 *
 * A KILL that comes after its exit's deadline is still enforced by the daemon at the end of its
 * grace, so the VMM registers a late-kill callback that starts terminating the VM; this example
 * only says so on stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seawall_plugin.h"

/* ESR of the selftest's exit: EC 0x24 (data abort from a lower EL), IL, FSC 0x10; FnV clear. */
#define SEA_ESR ((UINT64_C(0x24) << 26) | (UINT64_C(1) << 25) | UINT64_C(0x10))
#define SEA_GVA UINT64_C(0x81234BAD)
/* Page aligned, as KVM reports it from HPFAR. */
#define SEA_GPA UINT64_C(0x45678B000)

/* Runs under the plugin's caller (here: main), inside a plugin call: only start the shutdown. */
static void on_late_kill(void *ctx, const struct seawall_verdict *kill) {
  (void)ctx;
  fprintf(stderr, "seawall: late KILL for seq %u: terminate within %u ms\n", kill->seq, kill->grace_ms);
}

static int parse_args(int argc, char **argv, const char **path, int *deadline_ms, int *reconnect) {
  if (argc < 2) return -1;
  *path = argv[1];
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--deadline-ms") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v <= 0 || v > 600000) return -1;
      *deadline_ms = (int)v;
    } else if (strcmp(argv[i], "--reconnect") == 0) {
      *reconnect = 1;
    } else {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int deadline_ms = 1000, reconnect = 0;
  if (parse_args(argc, argv, &path, &deadline_ms, &reconnect) != 0) {
    fprintf(stderr, "usage: %s SOCKET [--deadline-ms N] [--reconnect]\n", argv[0]);
    return 2;
  }

  static struct seawall_plugin plugin; /* ~45 KiB of buffers and tables: not on the stack */
  seawall_init(&plugin, deadline_ms, deadline_ms, SEAWALL_FALLBACK_INJECT);
  seawall_on_late_kill(&plugin, on_late_kill, NULL);

  const struct seawall_label labels[] = {{"tenant", "selftest"}};
  const struct seawall_hello hello = {
      .caps = SEAWALL_CAP_SEA_TO_USER | SEAWALL_CAP_INJECT_EXT_DABT | SEAWALL_CAP_RAS,
      .vmm_pid = (uint32_t)getpid(),
      .vcpu_count = 1,
      .ext_abt_esr_cap = 0,
      .vm_id = "c-example",
      .labels = labels,
      .label_count = sizeof labels / sizeof labels[0],
  };
  int r = seawall_connect(&plugin, path, &hello);
  if (r != 0) {
    /* Not fatal: the exit is answered by the fallback, as it must be with no daemon. */
    fprintf(stderr, "seawall: connect %s: %s%s%s\n", path, strerror(-r), plugin.last_code ? ": " : "",
            plugin.last_text);
  }

  const struct seawall_sea_exit exit_info = {
      .vcpu = 0,
      .kvm_flags = SEAWALL_KVM_SEA_FLAG_GPA_VALID,
      .esr = SEA_ESR,
      .gva = SEA_GVA,
      .gpa = SEA_GPA,
  };
  struct seawall_verdict v;
  int fell_back = seawall_handle_sea(&plugin, &exit_info, &v);

  char hex[2 * SEAWALL_VCPU_EVENTS_SIZE + 1];
  for (unsigned i = 0; i < SEAWALL_VCPU_EVENTS_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", v.vcpu_events[i]);
  printf("%s %s %s\n", seawall_action_name(v.action), hex, fell_back ? "fallback" : "daemon");
  fflush(stdout);

  /* This example "applies" the verdict by printing it; a VMM reports its ioctl's result. */
  if (!fell_back) seawall_send_applied(&plugin, v.seq, 0);

  if (fell_back && reconnect) {
    seawall_close(&plugin, SEAWALL_GOODBYE_NORMAL);
    r = seawall_connect(&plugin, path, &hello);
    if (r != 0) fprintf(stderr, "seawall: reconnect: %s\n", strerror(-r));
    fprintf(stderr, "replayed %llu\n", (unsigned long long)plugin.replayed);
  }
  seawall_close(&plugin, SEAWALL_GOODBYE_VM_EXITING);
  return 0;
}
