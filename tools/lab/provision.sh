#!/usr/bin/env bash
# Provision one lab machine (run inside it by Vagrant's shell provisioner):
# Salt from the bind-mounted venv as systemd services, the minion's key
# pre-seeded (its own key pair and the master's public key: the only files a
# minion gets from the lab host, see the Vagrantfile), and on the master host
# the master with the repo's state tree, pillar and secrets (mounted there
# only) and the pre-accepted minion keys.
# Usage: provision.sh NAME MASTER_IP VENV IS_MASTER(yes|no) TOPOLOGY [SALT_PIN]
set -euo pipefail
name=$1 master_ip=$2 venv=$3 is_master=$4 topology=$5 salt_pin=${6:-}
repo=/srv/airflow-ha
# this machine's keys: bind-mounted (lxc) or uploaded (the VM providers)
keys=/srv/airflow-ha-lab/pki
[ -f "$keys/minion.pem" ] || keys=/tmp/airflow-ha-lab-pki
unit() {  # unit NAME COMMAND [UMASK]
  cat > "/etc/systemd/system/$1.service" <<UNIT
[Unit]
Description=$1 (lab: Salt from the host's venv)
After=network-online.target
[Service]
ExecStart=$2
UMask=${3:-0022}
Restart=on-failure
KillMode=process
[Install]
WantedBy=multi-user.target
UNIT
}
cli() {  # the venv's scripts name the host's venv path in their #!: run them through its python
  for tool in "$@"; do
    printf '#!/bin/sh\nexec %s/bin/python %s/bin/%s "$@"\n' "$venv" "$venv" "$tool" > "/usr/local/bin/$tool"
    chmod 0755 "/usr/local/bin/$tool"
  done
}
if [ ! -x "$venv/bin/python" ]; then
  # a VM of the libvirt/VirtualBox providers (no venv bind-mounted from the
  # host): Salt from PyPI at the version the repo pins, in a venv of its own
  pin=$salt_pin
  [ -n "$pin" ] || { echo "provision.sh: no Salt version given (argument 6, salt==X from requirements/salt.txt)" >&2; exit 2; }
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python=python3
  else
    dnf install -y -q python3.11 python3.11-pip >/dev/null  # Salt 3008 needs a newer Python than Rocky 9's 3.9
    python=python3.11
  fi
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$pin"
fi
mkdir -p /etc/salt/minion.d /etc/salt/pki/minion
# keepalive and master pings: a minion whose connection died silently (e.g.
# under a firewall change) notices within seconds and reconnects
cat > /etc/salt/minion.d/lab.conf <<CONF
master: $master_ip
id: $name
airflow_ha_topology: $topology
state_output: changes
tcp_keepalive: True
tcp_keepalive_idle: 15
tcp_keepalive_cnt: 3
tcp_keepalive_intvl: 5
ping_interval: 1
CONF
install -m 0600 "$keys/minion.pem" /etc/salt/pki/minion/minion.pem
install -m 0644 "$keys/minion.pub" /etc/salt/pki/minion/minion.pub
install -m 0644 "$keys/master.pub" /etc/salt/pki/minion/minion_master.pub
if [ "$keys" = /tmp/airflow-ha-lab-pki ]; then rm -rf "$keys"; fi
if [ "$is_master" = yes ]; then
  mkdir -p /etc/salt/master.d /etc/salt/pki/master/minions
  cat > /etc/salt/master.d/lab.conf <<CONF
file_roots:
  base: [$repo/salt]
pillar_roots:
  base: [$repo/pillar, $repo/.secrets, $repo/.lab/pillar]
airflow_ha_topology: $topology
state_output: changes
timeout: 30
# no secret in the job cache or the logs (docs/secrets.md): jobs kept 1 hour,
# the cache and logs root-only, the master's files created 0600/0700
keep_jobs_seconds: 3600
log_level_logfile: warning
# each host asks the CA host (inventory role ca) to sign its certificate
# (salt/pki, x509_v2); the CA host's signing policies decide what it signs
peer:
  .*:
    - x509.sign_remote_certificate
# every Salt job onto the system log, and so to the log host (docs/logs.md)
engines_dirs:
  - $repo/salt/_engines
engines:
  - airflow_ha_audit: {}
# autoscaling (docs/operations.md#autoscaling): salt-api's webhook (salt/autoscale, with a
# standby worker host only) to the reactor, which checks it and runs orch.autoscale
reactor:
  - 'salt/netapi/hook/airflow-ha/autoscale':
    - salt://reactor/autoscale.sls
CONF
  install -d -m 0700 /var/cache/salt/master /var/log/salt
  chmod -R go-rwx /var/cache/salt/master
  install -m 0600 "$repo/.lab/pki/master.pem" /etc/salt/pki/master/master.pem
  install -m 0644 "$repo/.lab/pki/master.pub" /etc/salt/pki/master/master.pub
  for pub in "$repo"/.lab/pki/*.pub; do
    host=$(basename "$pub" .pub)
    [ "$host" = master ] || install -m 0644 "$pub" "/etc/salt/pki/master/minions/$host"
  done
  # every file the master writes (job cache, minion data cache, logs) root-only
  unit salt-master "$venv/bin/python $venv/bin/salt-master" 0077
  cli salt salt-run salt-key
fi
unit salt-minion "$venv/bin/python $venv/bin/salt-minion"
cli salt-call
systemctl daemon-reload
[ "$is_master" = yes ] && systemctl enable --now salt-master
systemctl enable --now salt-minion
