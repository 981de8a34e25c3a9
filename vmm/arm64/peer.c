/*
 * What another process can do with a vCPU fd it was passed, asked of the real kernel: the fact
 * vCPU attachment (docs/protocol.md §9a) and the daemon's design rest on (reference §5). While a
 * vCPU thread stands at an exit, as it does while it waits for a verdict, the VMM forks a child
 * and passes it the vCPU fd over a SOCK_SEQPACKET socketpair with SCM_RIGHTS, as a plugin passes
 * it to the daemon. The child, another address space, names the fd by its /proc link, maps it
 * read-only at offset 0 with its own /dev/kvm's KVM_GET_VCPU_MMAP_SIZE as the daemon does, copies
 * the kvm_run it sees, and tries the ioctls a daemon cannot make (KVM_RUN, KVM_SET_VCPU_EVENTS,
 * KVM_GET_ONE_REG, and KVM_CHECK_EXTENSION on the VM fd). The VMM reports it all, and whether the
 * child's copy equals its own mapping byte for byte.
 *
 * The child of a threaded process may only make async-signal-safe calls: it makes system calls
 * and copies bytes, nothing else, and ends with _exit.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvm_arm64.h"
#include "lane.h"
#include "report.h"

/* What the child sends back: one datagram. */
struct peer_answer {
  int recv_fds;     /* fds that came with the message */
  int mmap_size;    /* its own /dev/kvm's KVM_GET_VCPU_MMAP_SIZE, or -errno */
  int mmap_result;  /* 0 or -errno */
  int run, set_events, get_reg, vm_check; /* 0 / a value, or -errno */
  char link[64];
  uint8_t run_page[sizeof(struct kvm_run)];
};

static int neg_errno(long r) { return r < 0 ? -errno : (int)r; }

static int recv_fd(int sock, int *count) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * 4)];
  } ctl;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  *count = 0;
  if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  if (h == NULL || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) return -1;
  *count = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
  int fd;
  memcpy(&fd, CMSG_DATA(h), sizeof fd);
  return *count == 1 ? fd : -1;
}

static void child(int sock, int vm_fd) {
  static struct peer_answer a;
  int fd = recv_fd(sock, &a.recv_fds);
  if (fd >= 0) {
    char path[32] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    for (int v = fd; n == 0 || v > 0; v /= 10) digits[n++] = (char)('0' + v % 10);
    for (int i = 0; i < n; i++) path[14 + i] = digits[n - 1 - i];
    path[14 + n] = '\0';
    ssize_t len = readlink(path, a.link, sizeof a.link - 1);
    if (len > 0) a.link[len] = '\0';
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    a.mmap_size = kvm < 0 ? -errno : neg_errno(ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
    if (a.mmap_size >= (int)sizeof(struct kvm_run)) {
      void *p = mmap(NULL, (size_t)a.mmap_size, PROT_READ, MAP_SHARED, fd, 0);
      a.mmap_result = p == MAP_FAILED ? -errno : 0;
      if (p != MAP_FAILED) memcpy(a.run_page, p, sizeof a.run_page);
    }
    uint8_t image[64] = {0};
    struct kvm_one_reg reg = {.id = REG_PC, .addr = (uintptr_t)&(uint64_t){0}};
    a.run = neg_errno(ioctl(fd, KVM_RUN, 0));
    a.set_events = neg_errno(ioctl(fd, KVM_SET_VCPU_EVENTS, image));
    a.get_reg = neg_errno(ioctl(fd, KVM_GET_ONE_REG, &reg));
    a.vm_check = neg_errno(ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_NISV_TO_USER));
  }
  (void)!send(sock, &a, sizeof a, MSG_NOSIGNAL);
  _exit(0);
}

static int send_fd(int sock, int fd) {
  char byte = 'V';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET;
  h->cmsg_type = SCM_RIGHTS;
  h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &fd, sizeof fd);
  return sendmsg(sock, &m, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

void peer_probe(struct lane_vcpu *c, const char *step) {
  struct peer_answer a;
  memset(&a, 0, sizeof a);
  int sv[2], status = 0, got = -EPROTO;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    report("{\"t\":\"error\",\"what\":\"peer socketpair\",\"errno\":%d}", errno);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    child(sv[1], c->vm->fd);
  }
  close(sv[1]);
  if (pid < 0) {
    report("{\"t\":\"error\",\"what\":\"peer fork\",\"errno\":%d}", errno);
    close(sv[0]);
    return;
  }
  int sent = send_fd(sv[0], c->fd);
  struct pollfd p = {.fd = sv[0], .events = POLLIN};
  if (sent == 0 && poll(&p, 1, 20000) == 1) got = (int)recv(sv[0], &a, sizeof a, 0);
  if (got != (int)sizeof a) kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  close(sv[0]);
  char head[2 * 64 + 1];
  hex64(head, a.run_page);
  int same = memcmp(a.run_page, c->run, sizeof a.run_page) == 0;
  report("{\"t\":\"peer\",\"vm\":\"%s\",\"vcpu\":%u,\"step\":\"%s\",\"answered\":%d,\"exit\":%d,\"fds\":%d,"
         "\"link\":\"%s\",\"mmapSize\":%d,\"mmap\":%d,\"same\":%d,\"head\":\"%s\",\"run\":%d,\"setEvents\":%d,"
         "\"getReg\":%d,\"vmCheck\":%d}",
         c->vm->name, c->index, step, got == (int)sizeof a, WIFEXITED(status) ? WEXITSTATUS(status) : -1, a.recv_fds,
         a.link, a.mmap_size, a.mmap_result, same, head, a.run, a.set_events, a.get_reg, a.vm_check);
}
