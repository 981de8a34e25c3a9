/* One KVM VM of the lane VMM (vm.c). */
#ifndef VM_H
#define VM_H

#include <stddef.h>

#include "lane.h"

/* Creates the VM with `nvcpus` vCPUs at the guest's entry, probes and enables the KVM caps, and
 * connects its plugin through the virtio-serial port named `port`. 0 or -errno. */
int vm_create(struct lane_vm *vm, int kvm, size_t mmap_size, unsigned nvcpus, const char *port);
/* Runs each vCPU's steps concurrently (steps[i] for vCPU i) and waits for all of them. */
int vm_run(struct lane_vm *vm, const struct lane_step *const *steps, const unsigned *nsteps);
/* GOODBYE with `reason` and the plugin's counters reported. */
void vm_close(struct lane_vm *vm, uint16_t reason);

#endif
