/* KVM_EXIT_ARM_SEA's record and the FAR it gives an emulated abort (sea.h). */
#include "sea.h"

static uint64_t le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

void sea_exit_read(const void *run, uint32_t vcpu, struct seawall_sea_exit *out) {
  const unsigned char *b = run;
  out->vcpu = vcpu;
  out->kvm_flags = le64(b + RUN_ARM_SEA_FLAGS);
  out->esr = le64(b + RUN_ARM_SEA_ESR);
  out->gva = le64(b + RUN_ARM_SEA_GVA);
  out->gpa = le64(b + RUN_ARM_SEA_GPA);
}

uint64_t sea_exit_far(const struct seawall_sea_exit *e) { return (e->esr & ESR_FNV) ? 0 : e->gva; }
