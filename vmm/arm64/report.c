/*
 * Reporting to the test: the VMM writes one JSON object per line to the "lane-ctl" virtio-serial
 * port, whose host end is a socket the test listens on, and reads the test's "go" lines there
 * when a phase needs something done on the host first (stopping the daemon, for instance).
 */
#define _GNU_SOURCE

#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int ctl_fd = 2;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void report_open(int fd) { ctl_fd = fd; }

void report(const char *fmt, ...) {
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  pthread_mutex_lock(&lock);
  for (int off = 0; off < n;) {
    ssize_t w = write(ctl_fd, line + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (int)w;
  }
  pthread_mutex_unlock(&lock);
  if (ctl_fd != 2) (void)!write(2, line, (size_t)n); /* the console too: the log of a failed run */
}

void hex64(char out[129], const uint8_t b[64]) {
  for (int i = 0; i < 64; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void report_result(const struct lane_result *r) {
  if (r->step == NULL) return;
  char img[129];
  hex64(img, r->verdict.vcpu_events);
  report("{\"t\":\"step\",\"vm\":\"%s\",\"vcpu\":%u,\"step\":\"%s\",\"addr\":\"0x%" PRIx64 "\","
         "\"exit\":%" PRIu32 ",\"runErrno\":%d,\"f\":[\"0x%" PRIx64 "\",\"0x%" PRIx64 "\",\"0x%" PRIx64
         "\",\"0x%" PRIx64 "\"],"
         "\"sent\":%d,\"fallback\":%d,\"seq\":%" PRIu32 ",\"action\":\"%s\",\"flags\":%u,\"grace\":%" PRIu32
         ",\"vesr\":\"0x%" PRIx64 "\",\"image\":\"%s\",\"applied\":%d,"
         "\"pc\":\"0x%" PRIx64 "\",\"reported\":%d,\"vector\":%" PRIu64 ",\"esr\":\"0x%" PRIx64 "\",\"far\":\"0x%" PRIx64
         "\",\"elr\":\"0x%" PRIx64 "\",\"finished\":%d}",
         r->vm, r->vcpu, r->step->name, r->step->addr, r->exit_reason, r->run_errno, r->f[0], r->f[1], r->f[2],
         r->f[3], r->event_sent, r->fell_back, r->verdict.seq, seawall_action_name(r->verdict.action),
         r->verdict.flags, r->verdict.grace_ms, r->verdict.esr, img, r->apply_result, r->pc, r->reported, r->vector,
         r->esr, r->far, r->elr, r->finished);
}

int report_wait(const char *phase, int timeout_ms) {
  report("{\"t\":\"wait\",\"phase\":\"%s\"}", phase);
  char buf[64];
  size_t len = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (spent >= timeout_ms) return -ETIMEDOUT;
    struct pollfd pfd = {.fd = ctl_fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(timeout_ms - spent));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? -errno : -ETIMEDOUT;
    ssize_t n = read(ctl_fd, buf + len, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return -EPIPE;
    if (buf[len] == '\n') return 0;
    if (len < sizeof buf - 1) len++;
  }
}
