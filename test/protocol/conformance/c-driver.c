/*
 * Drives vmm/c from the conformance suite's line protocol (stdin → one reply line on stdout); the
 * commands are those of vmm/rust/examples/conformance_driver.rs, so one suite runs all plugins.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seawall_plugin.h"

#define MAX_WORDS 48

static struct seawall_plugin plugin;

static uint64_t num(const char *s) { return (uint64_t)strtoull(s, NULL, 0); }

static int64_t snum(const char *s) { return (int64_t)strtoll(s, NULL, 0); }

static void print_verdict(const struct seawall_verdict *v) {
  printf("verdict %u %s %u %u 0x%llx ", v->seq, seawall_action_name(v->action), v->flags, v->grace_ms,
         (unsigned long long)v->esr);
  for (unsigned i = 0; i < SEAWALL_VCPU_EVENTS_SIZE; i++) printf("%02x", v->vcpu_events[i]);
  printf(" %s\n", v->source == SEAWALL_FROM_DAEMON ? "daemon" : "fallback");
}

static void do_connect(char **w, int n) {
  static struct seawall_label labels[SEAWALL_LABELS_MAX];
  static char store[MAX_WORDS][320];
  size_t count = 0;
  for (int i = 7; i < n && count < SEAWALL_LABELS_MAX; i++) {
    snprintf(store[i], sizeof store[i], "%s", w[i]);
    char *eq = strchr(store[i], '=');
    if (!eq) continue;
    *eq = '\0';
    labels[count].key = store[i];
    labels[count].value = eq + 1;
    count++;
  }
  struct seawall_hello hello = {
      .caps = (uint32_t)num(w[3]),
      .vmm_pid = (uint32_t)num(w[5]),
      .vcpu_count = (uint32_t)num(w[4]),
      .ext_abt_esr_cap = (uint32_t)num(w[6]),
      .vm_id = w[2],
      .labels = labels,
      .label_count = count,
  };
  int r = seawall_connect(&plugin, w[1], &hello);
  if (r == 0) {
    printf("welcome %u %u %u %llu %u %u\n", plugin.welcome.version, plugin.welcome.minor,
           plugin.welcome.max_in_flight, (unsigned long long)plugin.welcome.session_id,
           plugin.welcome.heartbeat_ms, plugin.welcome.max_body);
  } else if (r == -ECONNREFUSED) {
    printf("refused %u %u %u\n", plugin.last_code, plugin.supported_major, plugin.supported_minor);
  } else {
    printf("error %s\n", strerror(-r));
  }
}

static void run(char **w, int n) {
  struct seawall_verdict v;
  if (strcmp(w[0], "init") == 0) {
    enum seawall_fallback fb = strcmp(w[2], "kill") == 0     ? SEAWALL_FALLBACK_KILL
                               : strcmp(w[2], "resume") == 0 ? SEAWALL_FALLBACK_RESUME
                                                             : SEAWALL_FALLBACK_INJECT;
    seawall_init(&plugin, (int)num(w[1]), (int)num(w[1]), fb);
    seawall_set_minor(&plugin, (uint16_t)num(w[3]));
    printf("ok\n");
  } else if (strcmp(w[0], "connect") == 0) {
    do_connect(w, n);
  } else if (strcmp(w[0], "sea") == 0) {
    struct seawall_sea_exit e = {(uint32_t)num(w[1]), num(w[2]), num(w[3]), num(w[4]), num(w[5])};
    seawall_handle_sea(&plugin, &e, &v);
    print_verdict(&v);
  } else if (strcmp(w[0], "nisv") == 0) {
    struct seawall_nisv_exit e = {(uint32_t)num(w[1]), num(w[2]), num(w[3])};
    seawall_handle_nisv(&plugin, &e, &v);
    print_verdict(&v);
  } else if (strcmp(w[0], "mmio") == 0) {
    struct seawall_mmio_exit e = {.vcpu = (uint32_t)num(w[1]), .phys_addr = num(w[2]), .len = (uint32_t)num(w[3]),
                                  .is_write = (uint8_t)num(w[4])};
    seawall_handle_mmio(&plugin, &e, &v);
    print_verdict(&v);
  } else if (strcmp(w[0], "sigbus") == 0) {
    struct seawall_sigbus e = {
        .vcpu = strcmp(w[1], "none") == 0 ? SEAWALL_NO_VCPU : (uint32_t)num(w[1]),
        .si_code = (uint16_t)num(w[2]),
        .addr_lsb = (uint16_t)num(w[3]),
        .gpa = strcmp(w[4], "none") == 0 ? SEAWALL_NO_GPA : num(w[4]),
    };
    seawall_handle_sigbus(&plugin, &e, &v);
    print_verdict(&v);
  } else if (strcmp(w[0], "applied") == 0) {
    int r = seawall_send_applied(&plugin, (uint32_t)num(w[1]), (int32_t)snum(w[2]));
    if (r) printf("error %s\n", strerror(-r)); else printf("ok\n");
  } else if (strcmp(w[0], "applied-fallback") == 0) {
    int r = seawall_send_applied_fallback(&plugin, (uint32_t)num(w[1]), (int32_t)snum(w[2]), (uint8_t)num(w[3]));
    if (r) printf("error %s\n", strerror(-r)); else printf("ok\n");
  } else if (strcmp(w[0], "poll") == 0) {
    int r = seawall_poll(&plugin, (int)num(w[1]));
    if (r < 0) printf("error %s\n", strerror(-r)); else printf("polled %d\n", r);
  } else if (strcmp(w[0], "stats") == 0) {
    /* fallbacks are not counted by the C library; the suite reads only the other three here */
    printf("stats 0 %llu %llu %zu\n", (unsigned long long)plugin.replayed, (unsigned long long)plugin.late_verdicts,
           plugin.kept_count);
  } else if (strcmp(w[0], "close") == 0) {
    seawall_close(&plugin, (uint16_t)num(w[1]));
    printf("ok\n");
  } else {
    printf("error unknown command %s\n", w[0]);
  }
}

int main(void) {
  static char line[8192];
  seawall_init(&plugin, 1000, 1000, SEAWALL_FALLBACK_INJECT);
  while (fgets(line, sizeof line, stdin)) {
    char *w[MAX_WORDS];
    int n = 0;
    for (char *t = strtok(line, " \t\r\n"); t && n < MAX_WORDS; t = strtok(NULL, " \t\r\n")) w[n++] = t;
    if (n == 0) continue;
    run(w, n);
    fflush(stdout);
  }
  return 0;
}
