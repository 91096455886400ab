#!/usr/bin/env bash
# make lab: from a fresh Debian 12 machine (root) to a rehearsed HA Airflow in
# LXC containers: packages, box, bridge, Salt keys, `vagrant up`, the
# orchestrated bring-up from the master, then the smoke DAG's result and the
# URLs. Prints the bring-up figures. AIRFLOW_HA_TOPOLOGY=compact|full.
# AIRFLOW_HA_LAB_PROVIDER=libvirt|virtualbox (a Vagrant box in AIRFLOW_HA_BOX,
# default generic/rocky9) on machines that run VMs: the LXC set-up is skipped
# and the VMs install Salt and Airflow from PyPI (not runnable on ours).
set -euo pipefail
cd "$(dirname "$0")/../.."
topology=${AIRFLOW_HA_TOPOLOGY:-compact}
provider=${AIRFLOW_HA_LAB_PROVIDER:-lxc}
export AIRFLOW_HA_TOPOLOGY=$topology AIRFLOW_HA_LAB_PROVIDER=$provider
t0=$(date +%s)

case $provider in
  lxc) packages=(lxc lxc-templates vagrant vagrant-lxc dnsmasq-base) ;;
  libvirt) packages=(vagrant vagrant-libvirt libvirt-daemon-system qemu-system-x86) ;;
  virtualbox) packages=(vagrant) ;;  # VirtualBox itself comes from Oracle's repository, not Debian's
  *) echo "AIRFLOW_HA_LAB_PROVIDER: lxc, libvirt or virtualbox, not $provider" >&2; exit 2 ;;
esac
need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
tools/install-deps.sh
# every run: adds what a newer tree needs and re-issues a certificate whose
# names changed (both idempotent), the hosts of the lab's inventory included
# (the CA key stays in .secrets/ca, which the master host, the inventory's CA
# host, sees at /srv/airflow-ha/.secrets/ca: the Vagrantfile's mount)
secrets_args=(--ca-host-dir /srv/airflow-ha/.secrets/ca)
[ -f .lab/pillar/inventory/lab.yaml ] && secrets_args+=(--inventory .lab/pillar/inventory/lab.yaml)
.venv/bin/python tools/gen_secrets.py "${secrets_args[@]}"

if [ "$provider" = lxc ]; then
# networks: LXC's NAT bridge (eth0, package mirrors, vagrant ssh) and the
# inventory's network on a bridge of our own (eth1, fixed IPs, VIPs)
# (no systemd on such hosts: started by hand, and restarted when a previous
# session left the bridge without its dnsmasq)
if ! pgrep -f 'dnsmasq.*lxcbr0' >/dev/null; then
  USE_LXC_BRIDGE=true /usr/libexec/lxc/lxc-net stop force >/dev/null 2>&1 || true
  USE_LXC_BRIDGE=true /usr/libexec/lxc/lxc-net start
fi
bridge=${AIRFLOW_HA_LAB_BRIDGE:-ahlab0}
export AIRFLOW_HA_LAB_BRIDGE=$bridge
gateway=$(.venv/bin/python tools/lab/inventory.py "$topology" gateway)
if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" type bridge
  ip addr add "$gateway" dev "$bridge"
  ip link set "$bridge" up
fi

tools/lab/build-box.sh
# Airflow's and Patroni's wheels, so the containers install them without reaching PyPI: the current
# Airflow 3 pin, the previous release's (the upgrade drill's, requirements/airflow-3.X.Y.txt) and Patroni's
wheels=/var/cache/airflow-ha/wheels
pins=(requirements/airflow-3.txt requirements/airflow-3.[0-9]*.txt requirements/patroni.txt)
if ! cat "${pins[@]}" | cmp -s - "$wheels/.requirements"; then
  # one pip run per file: they pin different versions of shared packages (certifi, ...)
  for pinned in "${pins[@]}"; do
    if ! out=$(/var/cache/airflow-ha/pin3/bin/pip wheel -q --disable-pip-version-check --no-deps \
                 -r "$pinned" -w "$wheels" 2>&1); then
      echo "$out" | grep -v '^WARNING: Location' >&2
      exit 1
    fi
  done
  cat "${pins[@]}" > "$wheels/.requirements"
fi
export AIRFLOW_HA_LAB_VENV=$PWD/.venv
export AIRFLOW_HA_LAB_PYTHON=$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')
export AIRFLOW_HA_LAB_WHEELS=$wheels
fi
mkdir -p .lab/pillar .lab/pki
chmod 0700 .lab
# the lab's own copy of the inventory (kept when the lab exists already)
.venv/bin/python tools/lab/inventory.py "$topology" init >/dev/null
.venv/bin/python tools/lab/inventory.py "$topology" pillar > .lab/pillar/lab.sls
for name in master $(.venv/bin/python tools/lab/inventory.py "$topology" hosts); do
  if [ ! -f ".lab/pki/$name.pem" ]; then  # salt-key --gen-keys of salt 3008.3 crashes after writing
    openssl genrsa -out ".lab/pki/$name.pem" 2048 2>/dev/null
    openssl rsa -in ".lab/pki/$name.pem" -pubout -out ".lab/pki/$name.pub" 2>/dev/null
  fi
done

if [ "$provider" = lxc ]; then
  # one lab per machine: another tree's containers on this bridge hold the same
  # addresses and VIPs, and would answer this lab's SSH, Salt and API traffic
  ours=$(for id in .vagrant/machines/*/lxc/id; do if [ -f "$id" ]; then cat "$id"; echo; fi; done)
  others=()
  for name in $(lxc-ls --running); do
    grep -Eqx "lxc\.net\.[0-9]+\.link *= *$bridge" "/var/lib/lxc/$name/config" 2>/dev/null \
      && ! grep -qx "$name" <<<"$ours" && others+=("$name")
  done
  if [ ${#others[@]} -gt 0 ]; then
    echo "another lab is running on bridge $bridge: ${others[*]}" >&2
    echo "destroy it first (tools/lab/destroy.sh in its tree, or lxc-stop -k -n NAME; lxc-destroy -n NAME)" >&2
    exit 1
  fi
fi

t1=$(date +%s)
vagrant up --provider="$provider"
t2=$(date +%s)
master=$(.venv/bin/python tools/lab/inventory.py "$topology" master)
vagrant ssh "$master" -c "sudo salt-run manage.up timeout=60 >/dev/null; sudo salt '*' test.ping --timeout=60" 
orchestrate() {
  vagrant ssh "$master" -c "sudo salt '*' saltutil.refresh_pillar >/dev/null; sudo salt-run state.orchestrate orch.bringup" \
    | tee "$1"
}
# The bring-up is idempotent: a step that failed on a transient (a package
# mirror, a slow boot) is run again once, as an operator would; said loudly.
if ! orchestrate .lab/bringup-1.log; then
  echo "WARNING: the first orchestrate run failed (.lab/bringup-1.log); running it once more"
  orchestrate .lab/bringup.log
else
  cp .lab/bringup-1.log .lab/bringup.log
fi
t3=$(date +%s)
echo
echo "FIGURE lab bring-up: setup $((t1 - t0)) s, vagrant up $((t2 - t1)) s, orchestrate $((t3 - t2)) s, total $((t3 - t0)) s"
.venv/bin/python tools/lab/inventory.py "$topology" urls
