{%- from 'postgres/map.jinja' import postgres, this_host with context %}
{%- from 'pki/map.jinja' import pki with context %}
# PostgreSQL managed by Patroni, one member per host of the `postgres` role;
# the etcd cluster (role etcd) must be healthy before Patroni starts.
include:
{%- if 'etcd' in this_host.roles %}
  - etcd
{%- endif %}
{%- if postgres.patroni.tls.enabled %}
  - pki
{%- endif %}
{%- if postgres.archiving %}
  # pgBackRest: archive_command and restore_command call it (salt/backup)
  - backup.member
{%- endif %}

{%- for name, repo in postgres.get('repos', {}).items() %}
postgres-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: postgres-packages
{%- endfor %}

postgres-packages:
  pkg.installed:
    - pkgs: {{ postgres.packages | json }}

postgres-packaged-cluster-stopped:
  # the distribution's own cluster would take port 5432 from Patroni's
  service.dead:
    - name: {{ postgres.packaged_cluster_service }}
    - enable: False
    - require:
      - pkg: postgres-packages

{%- set install = postgres.patroni_install %}
postgres-patroni-requirements:
  file.managed:
    - name: {{ (install.home ~ '/requirements.txt') | json }}
    - source: salt://postgres/files/{{ install.requirements }}
    - makedirs: True
    - mode: '0644'

postgres-patroni-venv:
  cmd.run:
    - name: {{ (postgres.python ~ ' -m venv ' ~ install.venv) | json }}
    - creates: {{ (install.venv ~ '/bin/pip') | json }}
    - require:
      - pkg: postgres-packages

postgres-patroni-installed:
  cmd.run:
    - name: {{ (install.venv ~ '/bin/pip install --no-deps ' ~ install.pip_args ~ ' -r ' ~ install.home ~ '/requirements.txt') | json }}
    # reinstall only when the venv does not hold the pinned version
    - unless: {{ (install.venv ~ "/bin/pip show patroni | grep -qx 'Version: " ~ install.version ~ "'") | json }}
    - require:
      - cmd: postgres-patroni-venv
      - file: postgres-patroni-requirements

{%- for command in ['patroni', 'patronictl'] %}

postgres-{{ command }}-command:
  # on PATH for the patroni execution module, the validator and operators
  file.symlink:
    - name: /usr/local/bin/{{ command }}
    - target: {{ (install.venv ~ '/bin/' ~ command) | json }}
    - force: True
    - require:
      - cmd: postgres-patroni-installed
{%- endfor %}

postgres-patroni-unit:
  file.managed:
    - name: /etc/systemd/system/{{ postgres.service }}.service
    - source: salt://postgres/files/patroni.service.jinja
    - template: jinja
    - mode: '0644'
    - context:
        user: {{ postgres.user | json }}
        patroni: {{ (install.venv ~ '/bin/patroni') | json }}
        config: {{ postgres.config | json }}
    - require:
      - cmd: postgres-patroni-installed

# a Patroni already running (an upgrade of the pinned version, or of its unit)
# restarts on the new one: apply host by host (salt -b 1, a rolling
# orchestrate) so that one member at a time hands over; a fresh host has no
# Patroni running yet and try-restart leaves it alone
postgres-patroni-restarted-for-a-new-version:
  cmd.run:
    - name: systemctl daemon-reload && systemctl try-restart {{ postgres.service }}
    - onchanges:
      - cmd: postgres-patroni-installed
      - file: postgres-patroni-unit

postgres-patroni-validator:
  file.managed:
    - name: /usr/local/sbin/patroni-validate-config
    - source: salt://postgres/files/patroni-validate-config.py
    - mode: '0755'
    - require:
      - file: postgres-patroni-command

{%- if postgres.patroni.tls.enabled %}

postgres-tls-key:
  # PostgreSQL refuses a key others can read: its own copy, owner postgres, 0600
  # (Patroni uses it too, for etcd and its REST API)
  file.managed:
    - name: {{ postgres.patroni.tls.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ postgres.user }}
    - group: {{ postgres.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: postgres-packages
      - x509: pki-host-key
{%- endif %}

postgres-patroni-config:
  file.managed:
    - name: {{ postgres.config }}
    - source: salt://postgres/files/patroni.yml.jinja
    - template: jinja
    - makedirs: True
    - user: {{ postgres.user }}
    - group: {{ postgres.user }}
    - mode: '0600'
    - show_changes: False
    - context:
        patroni: {{ postgres.patroni | json }}
    - check_cmd: /usr/local/sbin/patroni-validate-config
    - require:
      - pkg: postgres-packages
      - file: postgres-patroni-validator
{%- if postgres.patroni.tls.enabled %}
      - file: postgres-tls-key
      - x509: pki-host-cert
{%- endif %}

postgres-patroni-running:
  service.running:
    - name: {{ postgres.service }}
    - enable: True
    # SIGHUP: Patroni applies the new config without restarting PostgreSQL
    - reload: True
    - watch:
      - file: postgres-patroni-config
{%- if postgres.patroni.tls.enabled %}
      # a renewed certificate: the REST API re-reads it on reload
      - file: postgres-tls-key
      - x509: pki-host-cert
{%- endif %}
    - require:
      - service: postgres-packaged-cluster-stopped
      - cmd: postgres-patroni-restarted-for-a-new-version
{%- if postgres.archiving %}
      - file: backup-config
{%- endif %}
{%- if 'etcd' in this_host.roles %}
      - http: etcd-healthy
{%- endif %}

postgres-cluster-healthy:
  patroni.cluster_healthy:
    - members: {{ salt['ha_inventory.hosts']('postgres') | length }}
    - timeout: {{ postgres.cluster_wait_timeout }}
    - config: {{ postgres.config }}
    - require:
      - service: postgres-patroni-running

{%- if postgres.patroni.tls.enabled %}

# Patroni's reload re-reads its REST API certificate, but reloads PostgreSQL
# only for changed parameters: a renewed certificate (or new names in it)
# needs PostgreSQL's own reload, which keeps every session. After the cluster
# is healthy: while Patroni (re)starts a replica there is no postmaster to signal.
postgres-reloaded-for-a-new-certificate:
  cmd.run:
    - name: {{ (postgres.bin_dir ~ '/pg_ctl reload -D ' ~ postgres.data_dir) | json }}
    - runas: {{ postgres.user | json }}
    - onlyif: {{ (postgres.bin_dir ~ '/pg_ctl status -D ' ~ postgres.data_dir) | json }}
    - onchanges:
      - file: postgres-tls-key
      - x509: pki-host-cert
    - require:
      - patroni: postgres-cluster-healthy
{%- endif %}

postgres-dcs-config:
  patroni.config_applied:
    - settings: {{ postgres.dcs | json }}
    - config: {{ postgres.config }}
    - onlyif:
      - fun: patroni.is_leader
        config: {{ postgres.config }}
    - require:
      - patroni: postgres-cluster-healthy

{%- if postgres.archiving %}

# archive_mode needs a restart: a cluster that ran without archiving (the
# backup role added later) restarts every member once, from the leader, after
# Patroni wrote the new parameters (one loop_wait). Never again: the leader
# then reports archive_mode on.
postgres-restarted-for-archiving:
  cmd.run:
    - name: {{ ('sleep ' ~ (postgres.dcs.loop_wait | int + 5) ~ ' && patronictl -c ' ~ postgres.config ~ ' restart '
                ~ postgres.scope ~ ' --force') | json }}
    - onlyif:
      - fun: patroni.is_leader
        config: {{ postgres.config }}
      - {{ (postgres.bin_dir ~ '/psql -XAtc "SHOW archive_mode" | grep -qx off') | json }}
    - runas: {{ postgres.user | json }}
    - require:
      - patroni: postgres-dcs-config
{%- endif %}

{%- set airflow_password = salt['pillar.get']('secrets:postgres:airflow_password') %}
postgres-airflow-role:
  postgres_user.present:
    - name: {{ postgres.airflow.user }}
    # with PgBouncer (pillar airflow:pgbouncer:enabled): the verifier its auth
    # files hold, stored as given (Salt compares it as is: a second apply changes nothing)
    - password: {{ (salt['airflow_ha.scram_sha_256'](airflow_password, postgres.airflow.user)
                    if postgres.airflow_scram_verifier else airflow_password) | json }}
    - encrypted: scram-sha-256
    - login: True
    - db_user: {{ postgres.superuser }}
    - user: {{ postgres.user }}
    - onlyif:
      - fun: patroni.is_leader
        config: {{ postgres.config }}
    - require:
      - patroni: postgres-cluster-healthy

# postgres_exporter's role: login over the local socket only (peer), no
# password, read access to the statistics views through pg_monitor
postgres-monitoring-role:
  postgres_user.present:
    - name: {{ postgres.monitoring_role }}
    - login: True
    - groups: pg_monitor
    - db_user: {{ postgres.superuser }}
    - user: {{ postgres.user }}
    - onlyif:
      - fun: patroni.is_leader
        config: {{ postgres.config }}
    - require:
      - patroni: postgres-cluster-healthy

postgres-airflow-database:
  postgres_database.present:
    - name: {{ postgres.airflow.database }}
    - owner: {{ postgres.airflow.user }}
    - encoding: UTF8
    - db_user: {{ postgres.superuser }}
    - user: {{ postgres.user }}
    - onlyif:
      - fun: patroni.is_leader
        config: {{ postgres.config }}
    - require:
      - postgres_user: postgres-airflow-role
