{%- from 'postgres/map.jinja' import postgres, this_host with context %}
# PostgreSQL managed by Patroni, one member per host of the `postgres` role;
# the etcd cluster (role etcd) must be healthy before Patroni starts.
include:
{%- if 'etcd' in this_host.roles %}
  - etcd
{%- endif %}
{%- if postgres.patroni.tls.enabled %}
  - pki
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
    - pkgs: {{ (postgres.packages + (postgres.tls_packages if postgres.patroni.tls.enabled else [])) | json }}

postgres-packaged-cluster-stopped:
  # the distribution's own cluster would take port 5432 from Patroni's
  service.dead:
    - name: {{ postgres.packaged_cluster_service }}
    - enable: False
    - require:
      - pkg: postgres-packages

{%- if postgres.get('patroni_api_py') %}
# Patroni 3.0.2 (Debian 12) writes two /metrics lines Prometheus cannot parse
# (a space before the labels of patroni_postgres_server_version, "None" as a
# replica's timeline), so the whole scrape fails; the upstream fix of 3.0.3,
# applied before Patroni first starts. The patterns match only the broken
# lines: on a fixed Patroni these states change nothing. A Patroni already
# running picks the fix up at its next restart.
postgres-patroni-metrics-version-line-fixed:
  file.replace:
    - name: {{ postgres.patroni_api_py }}
    - pattern: 'patroni_postgres_server_version \{0\}'
    - repl: 'patroni_postgres_server_version{0}'
    - require:
      - pkg: postgres-packages
    - require_in:
      - service: postgres-patroni-running

postgres-patroni-metrics-timeline-fixed:
  file.replace:
    - name: {{ postgres.patroni_api_py }}
    - pattern: "postgres.get\\('timeline', 0\\)\\)"
    - repl: "postgres.get('timeline') or 0)"
    - require:
      - pkg: postgres-packages
    - require_in:
      - service: postgres-patroni-running
{%- endif %}

postgres-patroni-validator:
  file.managed:
    - name: /usr/local/sbin/patroni-validate-config
    - source: salt://postgres/files/patroni-validate-config.py
    - mode: '0755'

{%- if postgres.patroni.tls.enabled %}

postgres-tls-key:
  # PostgreSQL refuses a key others can read: its own copy, owner postgres, 0600
  # (Patroni uses it too, for etcd and its REST API)
  file.managed:
    - name: {{ postgres.patroni.tls.key_file | json }}
    - contents_pillar: tls:key
    - user: {{ postgres.user }}
    - group: {{ postgres.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: postgres-packages
      - file: pki-dir
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
      - file: pki-host-cert
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
      - file: pki-host-cert
{%- endif %}
    - require:
      - service: postgres-packaged-cluster-stopped
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
      - file: pki-host-cert
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

postgres-airflow-role:
  postgres_user.present:
    - name: {{ postgres.airflow.user }}
    - password: {{ salt['pillar.get']('secrets:postgres:airflow_password') | json }}
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
