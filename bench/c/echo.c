/*
 * Baseline for the socket benchmark (bench/socket-bench.ts): a Unix stream socket echo server in C, epoll, one
 * thread, non-blocking. It answers every byte it reads with the same byte, as fast as the kernel
 * allows — the floor any daemon round trip is compared with.
 * Usage: echo SOCKET_PATH   (prints "ready" once listening)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  unlink(argv[1]);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 512) < 0) {
    perror("listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("ready\n");
  fflush(stdout);
  static char buf[65536];
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
          ssize_t off = 0;
          while (off < r) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w > 0) off += w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) break;
          }
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) close(fd);
        break;
      }
    }
  }
}
