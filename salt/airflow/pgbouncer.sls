{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
{#- PgBouncer on this Airflow host (pillar airflow:pgbouncer, issue 19;
    included by airflow.config when enabled): 127.0.0.1 only, one pool
    (database and user airflow) to HAProxy's :5000 on the main VIP, i.e. the
    Patroni leader wherever it is, with TLS verify-full against the cluster CA
    when tls:enabled. Clients log in with SCRAM against the auth file, which
    holds the role's SCRAM verifier only (the one the postgres state sets in
    pg_authid: airflow_ha.scram_sha_256), and PgBouncer logs in to the server
    with the client's SCRAM keys: no password in any of its files. #}
{%- set pgb = airflow.pgbouncer %}
{%- if pgb.enabled %}
{%-   if airflow.tls.enabled %}
include:
  # the server connections verify the leader's certificate against the cluster CA
  - pki
{%-   endif %}

{%-   for name, repo in pgb.repos.items() %}

airflow-pgbouncer-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: airflow-pgbouncer-package
{%-   endfor %}

# Before the package: Debian's starts PgBouncer at install. Restarted when it
# dies (every Airflow component of the host connects through it); file
# descriptors as the components have (pillar airflow:limits:nofile).
airflow-pgbouncer-dropin:
  file.managed:
    - name: {{ ('/etc/systemd/system/' ~ pgb.service ~ '.service.d/airflow-ha.conf') | json }}
    - contents: |
        # Managed by Salt (airflow.pgbouncer)
        [Service]
        Restart=on-failure
        RestartSec=2s
        LimitNOFILE={{ airflow.limits.nofile }}
{%-   if pgb.runtime_directory %}
        RuntimeDirectory={{ pgb.runtime_directory }}
{%-   endif %}
    - makedirs: True
    - mode: '0644'

airflow-pgbouncer-package:
  pkg.installed:
    - name: {{ pgb.package | json }}
    - require:
      - file: airflow-pgbouncer-dropin

# The SCRAM verifier of Airflow's DB role, never the password: readable by
# PgBouncer's group only (its service user), not writable by it.
airflow-pgbouncer-auth-file:
  file.managed:
    - name: {{ pgb.auth_file | json }}
    - source: {{ files_switch('airflow', ['pgbouncer_userlist.txt.jinja'], 'airflow-pgbouncer-auth-file') }}
    - template: jinja
    - user: root
    - group: {{ pgb.group | json }}
    - mode: '0640'
    - show_changes: False
    - context:
        pgbouncer: {{ pgb | json }}
    - require:
      - pkg: airflow-pgbouncer-package

# PgBouncer has no configuration check of its own: the template is plain, and
# a bad file fails airflow-pgbouncer-running (the restart) with PgBouncer's error.
airflow-pgbouncer-config:
  file.managed:
    - name: {{ pgb.config | json }}
    - source: {{ files_switch('airflow', ['pgbouncer.ini.jinja'], 'airflow-pgbouncer-config') }}
    - template: jinja
    - user: root
    - group: {{ pgb.group | json }}
    - mode: '0640'
    - context:
        pgbouncer: {{ pgb | json }}
    - require:
      - pkg: airflow-pgbouncer-package
{%-   if pgb.server_tls %}
      - file: pki-ca-cert
{%-   endif %}

airflow-pgbouncer-unit-loaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: airflow-pgbouncer-dropin

# A new configuration restarts PgBouncer (listen and pool settings take
# effect; the components' pooled connections reconnect: pre-ping).
airflow-pgbouncer-running:
  service.running:
    - name: {{ pgb.service | json }}
    - enable: True
    - watch:
      - file: airflow-pgbouncer-config
      - file: airflow-pgbouncer-dropin
      - pkg: airflow-pgbouncer-package
    - require:
      - file: airflow-pgbouncer-auth-file
      - cmd: airflow-pgbouncer-unit-loaded

# A new verifier (the password rotated): PgBouncer re-reads the auth file on
# reload, keeping every connection.
airflow-pgbouncer-reloaded-for-new-credentials:
  cmd.run:
    - name: {{ ('systemctl reload ' ~ pgb.service) | json }}
    - onchanges:
      - file: airflow-pgbouncer-auth-file
    - require:
      - service: airflow-pgbouncer-running
{%- endif %}
