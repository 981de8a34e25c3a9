/* PID 1 duties of the lane's initramfs (boot.c). */
#ifndef BOOT_H
#define BOOT_H

void boot_mounts(void);
/* Loads each module path listed in `list` (one a line, dependencies first); returns how many. */
int boot_modules(const char *list);
/* Opens the virtio-serial port whose name is `name` (QEMU's virtserialport name=), or -errno. */
int boot_open_port(const char *name, int timeout_ms);
void boot_poweroff(void);

#endif
