/*
 * PID 1 duties in the L1 initramfs: mount what the VMM needs, load the kernel modules the harness
 * packed (virtio-pci and virtio-console are modules in Debian's 6.1 kernel), find the
 * virtio-serial ports by name, and power off at the end so QEMU exits.
 */
#define _GNU_SOURCE

#include "boot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void boot_mounts(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
}

int boot_modules(const char *list) {
  FILE *f = fopen(list, "r");
  if (!f) return 0; /* a kernel with everything built in gets no list */
  char path[256];
  int loaded = 0;
  while (fgets(path, sizeof path, f)) {
    path[strcspn(path, "\n")] = '\0';
    if (!path[0]) continue;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
      if (errno != EEXIST) fprintf(stderr, "lane: module %s: %s\n", path, strerror(errno));
    } else {
      loaded++;
    }
    if (fd >= 0) close(fd);
  }
  fclose(f);
  return loaded;
}

int boot_open_port(const char *name, int timeout_ms) {
  /* Ports appear once the virtio-console driver has probed; udev is not here to name them. */
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[300], got[64] = "";
      snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
      FILE *f = fopen(p, "r");
      if (!f) continue;
      if (fgets(got, sizeof got, f)) got[strcspn(got, "\n")] = '\0';
      fclose(f);
      if (strcmp(got, name) == 0) {
        snprintf(p, sizeof p, "/dev/%s", e->d_name);
        closedir(d);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
      }
    }
    if (d) closedir(d);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -ENOENT;
}

void boot_poweroff(void) {
  sync();
  if (getpid() == 1) reboot(RB_POWER_OFF);
}
