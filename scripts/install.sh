#!/bin/sh
# Installs a built seawall (npm ci && npm run build first) as a system service:
#   /usr/lib/seawall/          the package: dist/bin/, production node_modules, docs, rules (a copy,
#                              never a link into this tree: ProtectHome= would hide a home directory)
#   /usr/bin/seawall           the command (a link into /usr/lib/seawall)
#   /usr/lib/systemd/system/   seawall.service, seawall.socket, seawall-control.socket, seawall-attach.socket
#   /usr/lib/sysusers.d/, /usr/lib/tmpfiles.d/, /usr/lib/systemd/catalog/
#   /etc/seawall/seawall.yaml  the configuration the unit names (kept if it exists)
#   /usr/share/doc/seawall/, /usr/share/man/man1/seawall.1, bash completion
# DESTDIR=/some/root installs under that root instead (packaging, tests). Run as root.
set -eu
# Everything written here is run or read by root: none of it may be writable by another user,
# whatever umask the caller has.
umask 022

here=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}
lib="$root/usr/lib/seawall"

say() { printf 'install: %s\n' "$*"; }

[ -f "$here/dist/bin/seawall.js" ] || { echo "install: dist/ is missing: run npm ci && npm run build first" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || { echo "install: npm is not on PATH: it lists the production packages to copy" >&2; exit 1; }

# The new package is built beside the installed one and moved into place only once it runs: a
# failed install leaves the previous one working.
new="$lib.new"
list=$(mktemp)
trap 'rm -rf "$new" "$list" "$list.err" "$list.completion"' EXIT

# npm ls lists every production package; each is copied as files (cp -L), whatever links the
# source tree uses, so nothing under /usr points back into this directory.
if ! (cd "$here" && npm ls --omit=dev --all --parseable) >"$list" 2>"$list.err"; then
  cat "$list.err" >&2
  echo "install: npm ls failed: the production packages are not all installed (npm ci first?)" >&2
  exit 1
fi

say "copying the package to $new"
rm -rf "$new"
mkdir -p "$new"
# dist/bin/ is the whole program, one file per thread (scripts/bundle.mjs); tsc's tree beside it
# in dist/ is only what that file was joined from.
mkdir -p "$new/dist"
cp -R "$here/dist/bin" "$new/dist/"
cp "$here/package.json" "$here/package-lock.json" "$new/"
mkdir -p "$new/metrics" "$new/policies"
cp -R "$here/metrics/rules" "$here/metrics/dashboards" "$new/metrics/"
cp -R "$here/policies/examples" "$new/policies/"

say "copying the production node_modules (no dev tools)"
mkdir -p "$new/node_modules"
while read -r dir; do
  case "$dir" in
    "$here" | "$here/") continue ;;
  esac
  rel=${dir#"$here"/}
  # A tree whose node_modules is a link (a shared checkout) lists the link's target: keep the
  # part from node_modules/ on.
  rel="node_modules/${rel#*node_modules/}"
  mkdir -p "$new/$(dirname "$rel")"
  cp -RL "$dir" "$new/$rel"
done <"$list"
chmod 0755 "$new/dist/bin/seawall.js"

# The new copy must run (its packages all there) before it replaces the old one.
node "$new/dist/bin/seawall.js" completion bash >"$list.completion" || {
  echo "install: the copied program does not run: $lib is left as it was" >&2
  rm -f "$list.completion"
  exit 1
}

say "moving it into place: $lib"
rm -rf "$lib.old"
if [ -e "$lib" ]; then mv "$lib" "$lib.old"; fi
mv "$new" "$lib"
rm -rf "$lib.old"

mkdir -p "$root/usr/bin"
ln -sfn ../lib/seawall/dist/bin/seawall.js "$root/usr/bin/seawall"

say "systemd units, sysusers.d, tmpfiles.d, catalog"
install -d "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" \
  "$root/usr/lib/systemd/catalog"
install -m 0644 "$here/systemd/units/seawall.service" "$here/systemd/units/seawall.socket" \
  "$here/systemd/units/seawall-control.socket" "$here/systemd/units/seawall-attach.socket" \
  "$root/usr/lib/systemd/system/"
install -m 0644 "$here/systemd/units/sysusers.d/seawall.conf" "$root/usr/lib/sysusers.d/seawall.conf"
install -m 0644 "$here/systemd/units/tmpfiles.d/seawall.conf" "$root/usr/lib/tmpfiles.d/seawall.conf"
install -m 0644 "$here/systemd/catalog/seawall.catalog" "$root/usr/lib/systemd/catalog/seawall.catalog"

install -d "$root/etc/seawall"
if [ -e "$root/etc/seawall/seawall.yaml" ]; then
  say "keeping the existing $root/etc/seawall/seawall.yaml"
else
  install -m 0644 "$here/systemd/seawall.yaml" "$root/etc/seawall/seawall.yaml"
  say "configuration: $root/etc/seawall/seawall.yaml"
fi

say "documentation, man page, bash completion"
install -d "$root/usr/share/doc/seawall" "$root/usr/share/man/man1" "$root/usr/share/bash-completion/completions"
install -m 0644 "$here"/docs/*.md "$here/README.md" "$root/usr/share/doc/seawall/"
install -m 0644 "$here/docs/seawall.1" "$root/usr/share/man/man1/seawall.1"
install -m 0644 "$list.completion" "$root/usr/share/bash-completion/completions/seawall"
rm -f "$list.completion"

say "done. Next: systemd-sysusers; systemd-tmpfiles --create; journalctl --update-catalog;"
say "systemctl daemon-reload; systemctl enable --now seawall.socket seawall-control.socket seawall-attach.socket seawall.service"
