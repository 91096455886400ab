#!/usr/bin/env bash
# Build (once) the lab's Vagrant box for the lxc provider: Debian 12 from
# Debian's packages (no box can be downloaded), with the vagrant user and
# Vagrant's insecure key, DHCP on eth0, and the base role's packages baked in.
# Usage: tools/lab/build-box.sh [BOX_NAME]
set -euo pipefail
cd "$(dirname "$0")/../.."
box=${1:-airflow-ha/debian12}
if vagrant box list 2>/dev/null | grep -q "^$box "; then exit 0; fi
cache=/var/cache/airflow-ha
base_pkgs=$(.venv/bin/python -c 'import yaml; print(",".join(yaml.safe_load(open("salt/base/osfamilymap.yaml"))["Debian"]["packages"]))')
tools/build-rootfs.sh "$cache/rootfs-lab" "$base_pkgs"
work=$(mktemp -d /var/tmp/airflow-ha-box.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$cache/rootfs-lab" "$work/rootfs"
r=$work/rootfs
chroot "$r" useradd -m -s /bin/bash vagrant 2>/dev/null || true
install -d -m 0700 -o 1000 -g 1000 "$r/home/vagrant/.ssh"
key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub | head -n1)
install -m 0600 -o 1000 -g 1000 "$key" "$r/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "$r/etc/sudoers.d/vagrant"
chmod 0440 "$r/etc/sudoers.d/vagrant"
mkdir -p "$r/etc/systemd/network"
printf '[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n' > "$r/etc/systemd/network/eth0.network"
chroot "$r" systemctl enable systemd-networkd >/dev/null 2>&1
chroot "$r" systemctl enable ssh >/dev/null 2>&1 || true
: > "$r/etc/machine-id"
tar -C "$r" --numeric-owner -czf "$work/rootfs.tar.gz" .
printf 'lxc.include = /usr/share/lxc/config/debian.common.conf\nlxc.arch = amd64\n' > "$work/lxc-config"
echo '{"provider":"lxc","version":"1.0.0","template-opts":{"--strip-components":"1"}}' > "$work/metadata.json"
tar -C "$work" -czf "$work/box.box" rootfs.tar.gz lxc-config metadata.json
vagrant box add --force --name "$box" "$work/box.box" >/dev/null
echo "built box $box"
