#!/bin/sh
# Builds the lane VMM (guest included) as one static arm64 binary: build.sh OUT [CC]
# CC defaults to Debian's cross compiler, aarch64-linux-gnu-gcc (package gcc-aarch64-linux-gnu).
set -eu
out=$1
cc=${2:-aarch64-linux-gnu-gcc}
here=$(cd "$(dirname "$0")" && pwd)
exec "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -static -pthread \
  -I"$here" -I"$here/../c" -o "$out" \
  "$here/lane.c" "$here/vm.c" "$here/vcpu.c" "$here/boot.c" "$here/report.c" "$here/kvm_arm64.c" "$here/peer.c" "$here/sea.c" \
  "$here/guest.S" "$here/../c/seawall_plugin.c"
