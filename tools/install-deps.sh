#!/usr/bin/env bash
# Install what the tests need on a fresh Debian 12 machine (root): the Debian
# packages of requirements/apt-test.txt and a virtualenv (.venv) with
# requirements/test.txt. Re-running is a no-op when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^\s*$/d' requirements/apt-test.txt)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts some services on install; the tests start their own.
  for svc in postgresql etcd rabbitmq-server haproxy keepalived vsftpd slapd prometheus prometheus-alertmanager prometheus-node-exporter prometheus-blackbox-exporter pgbouncer prometheus-pgbouncer-exporter; do
    if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
  done
fi
python=${PYTHON:-python3}
# test.txt includes salt.txt (-r): a change of either re-runs pip
if [ ! -x .venv/bin/python ] || ! cat requirements/salt.txt requirements/test.txt | cmp -s - .venv/.requirements; then
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements/test.txt
  cat requirements/salt.txt requirements/test.txt > .venv/.requirements
fi
# Patroni from the same pinned file the postgres state installs, on PATH as
# the state puts it (/usr/local/bin): the loopback clusters of the tests run it
# as the postgres user, so its venv is built on Debian's python3, which every
# user may run (a python3 under root's home, such as pyenv's, is not)
patroni_venv=/var/cache/airflow-ha/patroni
system_python=/usr/bin/python3
if [ ! -x "$patroni_venv/bin/patroni" ] || ! cmp -s requirements/patroni.txt "$patroni_venv/.requirements" \
   || ! grep -qx "home = $(dirname "$system_python")" "$patroni_venv/pyvenv.cfg"; then
  rm -rf "$patroni_venv"
  "$system_python" -m venv "$patroni_venv"
  "$patroni_venv/bin/pip" install -q --disable-pip-version-check --no-deps -r requirements/patroni.txt
  cp requirements/patroni.txt "$patroni_venv/.requirements"
fi
chmod -R a+rX "$patroni_venv"
ln -sf "$patroni_venv/bin/patroni" /usr/local/bin/patroni
ln -sf "$patroni_venv/bin/patronictl" /usr/local/bin/patronictl
# Airflow 3 and the 2.x line for the tests, each from the same pinned file the
# airflow state installs (tests/airflow run the real components from them).
# A changed pin goes into the existing venv: pip installs only what is new or
# moved (python-ldap: one build, not a minute of reinstalling), then what the
# pin no longer lists is removed, so the venv is the pin again.
for major in 3 2; do
  airflow_venv=/var/cache/airflow-ha/pin$major
  pinned=requirements/airflow-$major.txt
  if [ ! -x "$airflow_venv/bin/airflow" ]; then
    echo "building the Airflow venv $airflow_venv (about a minute)"
    rm -rf "$airflow_venv"
    "$python" -m venv "$airflow_venv"
  fi
  if ! cmp -s "$pinned" "$airflow_venv/.requirements"; then
    [ ! -e "$airflow_venv/.requirements" ] || echo "updating the Airflow venv $airflow_venv to $pinned"
    "$airflow_venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$pinned"
    names() { sed -e 's/#.*//' -e 's/[=<>!~;[ ].*//' -e '/^$/d' | tr 'A-Z_.' 'a-z__' | tr _ - | sort -u; }
    extra=$(comm -23 <("$airflow_venv/bin/pip" freeze --disable-pip-version-check --exclude-editable | names) \
                     <(names < "$pinned"))
    if [ -n "$extra" ]; then
      echo "removing from $airflow_venv what $pinned no longer lists:" $extra
      "$airflow_venv/bin/pip" uninstall -q -y --disable-pip-version-check $extra
    fi
    cp "$pinned" "$airflow_venv/.requirements"
  fi
done
