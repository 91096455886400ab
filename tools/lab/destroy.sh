#!/usr/bin/env bash
# make lab-destroy: remove the lab's containers, its bridge and its keys
# (the box and the wheelhouse stay cached under /var/cache/airflow-ha).
set -uo pipefail
cd "$(dirname "$0")/../.."
export AIRFLOW_HA_TOPOLOGY=${AIRFLOW_HA_TOPOLOGY:-compact}
export AIRFLOW_HA_LAB_VENV=$PWD/.venv
# kill first: a clean shutdown waits for Airflow's units (TimeoutStopSec 120 s)
for id in .vagrant/machines/*/lxc/id; do
  [ -f "$id" ] && lxc-stop -k -n "$(cat "$id")" >/dev/null 2>&1
done
[ -d .vagrant ] && vagrant destroy -f
bridge=${AIRFLOW_HA_LAB_BRIDGE:-ahlab0}
ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge"
rm -rf .lab .vagrant
echo "lab destroyed"
