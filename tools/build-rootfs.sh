#!/usr/bin/env bash
# Build (once) a Debian 12 root filesystem for throwaway test hosts
# (systemd-nspawn) and the lab's LXC box. Nothing is downloaded but Debian
# packages. Usage: tools/build-rootfs.sh DEST [EXTRA_PACKAGES_COMMA_LIST]
set -euo pipefail
dest=${1:?usage: build-rootfs.sh DEST [extra,packages]}
extra=${2:-}
if [ -x "$dest/usr/bin/systemctl" ] && [ -f "$dest/.airflow-ha-rootfs" ] \
   && [ "$(cat "$dest/.airflow-ha-rootfs")" = "$extra" ]; then
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$(dirname "$dest")"
tmp="$dest.tmp.$$"
rm -rf "$tmp"
include=systemd,systemd-sysv,dbus,iproute2,python3,openssh-server,sudo,ca-certificates
[ -n "$extra" ] && include="$include,$extra"
debootstrap --variant=minbase --include="$include" bookworm "$tmp" "$mirror" >"$tmp.log" 2>&1 \
  || { tail -20 "$tmp.log" >&2; exit 1; }
rm -f "$tmp.log"
echo "$extra" > "$tmp/.airflow-ha-rootfs"
rm -rf "$dest"
mv "$tmp" "$dest"
