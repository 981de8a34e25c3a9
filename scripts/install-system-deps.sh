#!/usr/bin/env bash
# Installs the system tools the test suite uses, from Debian's packages, when any is missing:
#   gcc + libc6-dev   layout tests compile C programs from the documented kernel structs
#   promtool          (package prometheus) checks scraped metrics and tests the alert rules
#   systemd tools     journald, journalctl, systemd-analyze, systemd-socket-activate
#   python3           small test fixtures
#   the real-KVM lane (docs/real-kvm.md): qemu-system-aarch64 (package qemu-system-arm), Debian's
#                     aarch64 cross compiler with arm64 libc and kernel headers (the lane VMM is a
#                     static arm64 binary), cpio (its initramfs), xz (compressed kernel modules)
#   cargo             the Rust crate's tests and the conformance suite (vmm/rust; offline, no crates)
# Nothing is installed when everything is already there. cargo is not installed here: it comes
# with rustup (CI's machine has /root/.cargo/bin/cargo), and under CI=true its absence fails the run.
set -euo pipefail

# rustup's cargo is often not on a non-login shell's PATH.
for d in "${HOME:-/root}/.cargo/bin" /root/.cargo/bin; do
  [ -x "$d/cargo" ] && case ":$PATH:" in *":$d:"*) ;; *) export PATH="$d:$PATH" ;; esac
done
if ! command -v cargo >/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "cargo not found (looked on PATH and in ~/.cargo/bin): the Rust crate's tests cannot run under CI" >&2
    exit 1
  fi
  echo "cargo not found: the Rust crate's tests and its conformance runs will be skipped (install rustup's cargo)" >&2
fi

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
[ -f /usr/include/asm-generic/ioctl.h ] || need+=(linux-libc-dev)
command -v promtool >/dev/null || need+=(prometheus)
{ [ -x /lib/systemd/systemd-journald ] && command -v journalctl >/dev/null \
  && command -v systemd-analyze >/dev/null && command -v systemd-socket-activate >/dev/null; } || need+=(systemd)
command -v python3 >/dev/null || need+=(python3)
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
[ -f /usr/aarch64-linux-gnu/include/linux/kvm.h ] || need+=(linux-libc-dev-arm64-cross)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)

if [ ${#need[@]} -eq 0 ]; then
  echo "system test tools: all present"
  exit 0
fi

echo "system test tools: installing ${need[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install: ${need[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}"
