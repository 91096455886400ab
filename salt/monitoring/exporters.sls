{%- from 'monitoring/map.jinja' import monitoring, this_host with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
# Exporters on every host: node_exporter; postgres_exporter beside PostgreSQL
# (peer authentication over the local socket as the pg_monitor role the
# postgres state creates, so no password is needed); PgBouncer's exporter
# beside PgBouncer on the Airflow hosts (pillar airflow:pgbouncer:enabled: its
# admin console over PgBouncer's socket as PgBouncer's own user, no password).
{%- from 'airflow/components.jinja' import components as airflow_roles %}
{%- set pgbouncer_host = this_host.roles | select('in', airflow_roles) | list | length > 0 %}
{%- if pgbouncer_host %}
{%-   from 'airflow/map.jinja' import airflow with context %}
{%-   set pgbouncer_host = airflow.pgbouncer.enabled %}
{%- endif %}
include:
  - monitoring.repos
{%- if pgbouncer_host %}
  - airflow.pgbouncer
{%- endif %}

monitoring-exporter-node-package:
  pkg.installed:
    - name: {{ monitoring.exporter_packages.node }}

monitoring-exporter-node-running:
  service.running:
    - name: {{ monitoring.services.node }}
    - enable: True
    - require:
      - pkg: monitoring-exporter-node-package
{%- if 'postgres' in this_host.roles %}
{%- from 'postgres/map.jinja' import postgres with context %}

# The exporter's DSN comes from a file of ours, named by a unit drop-in that
# exists before the package: the package starts the exporter at install, and
# its own defaults file (left untouched) has an empty DSN that would
# crash-loop it into systemd's start limit.
monitoring-exporter-postgres-dsn:
  file.managed:
    - name: /etc/airflow-ha/postgres-exporter.env
    - contents: DATA_SOURCE_NAME="user={{ postgres.monitoring_role }} dbname=postgres host=/var/run/postgresql sslmode=disable"
    - makedirs: True
    - mode: '0644'

monitoring-exporter-postgres-dropin:
  file.managed:
    - name: /etc/systemd/system/{{ monitoring.services.postgres }}.service.d/airflow-ha.conf
    - contents: |
        [Service]
        EnvironmentFile=/etc/airflow-ha/postgres-exporter.env
    - makedirs: True
    - mode: '0644'

monitoring-exporter-postgres-package:
  pkg.installed:
    - name: {{ monitoring.exporter_packages.postgres }}
    - require:
      - file: monitoring-exporter-postgres-dsn
      - file: monitoring-exporter-postgres-dropin

monitoring-exporter-postgres-running:
  service.running:
    - name: {{ monitoring.services.postgres }}
    - enable: True
    - watch:
      - file: monitoring-exporter-postgres-dsn
      - file: monitoring-exporter-postgres-dropin
{%- endif %}
{%- if pgbouncer_host %}
{%-   set pgb = airflow.pgbouncer %}
{%-   set exporter = monitoring.pgbouncer_exporter %}
{%-   if exporter.config %}

# Debian's exporter: its settings from a file of ours (the package's own stays
# untouched), named by the drop-in; it listens on this host's IP (the port map
# opens it to the monitoring hosts)
monitoring-exporter-pgbouncer-config:
  file.managed:
    - name: {{ exporter.config | json }}
    - source: {{ files_switch('monitoring', ['pgbouncer-exporter.conf.jinja'], 'monitoring-exporter-pgbouncer-config') }}
    - template: jinja
    - makedirs: True
    - mode: '0644'
    - context:
        exporter: {{ {'host': this_host.ip, 'port': pgb.exporter_port, 'pgbouncer_port': pgb.port,
                      'socket_dir': pgb.socket_dir} | json }}
{%-   endif %}

{%-   if exporter.compat %}

# Debian 12's exporter (1.7) asks PgBouncer 1.18 for a SHOW STATS column it no
# longer has and dies at its start: run it with today's columns (the script's
# docstring); its other metrics are the package's own
monitoring-exporter-pgbouncer-compat:
  file.managed:
    - name: {{ exporter.compat | json }}
    - source: salt://monitoring/files/pgbouncer_exporter_compat.py
    - mode: '0755'
{%-   endif %}

monitoring-exporter-pgbouncer-dropin:
  file.managed:
    - name: /etc/systemd/system/{{ monitoring.services.pgbouncer }}.service.d/airflow-ha.conf
    - contents: |
        # Managed by Salt (monitoring.exporters)
        [Service]
{%-   if exporter.config %}
        Environment=CONFIG={{ exporter.config }}
{%-   endif %}
{%-   if exporter.compat %}
        ExecStart=
        ExecStart=/usr/bin/python3 {{ exporter.compat }}
{%-   endif %}
{%-   if not exporter.config %}
        User={{ exporter.user }}
        ExecStart=
        ExecStart={{ exporter.binary }} --web.listen-address={{ this_host.ip }}:{{ pgb.exporter_port }} --pgBouncer.connectionString=postgres:///pgbouncer?host={{ pgb.socket_dir }}&port={{ pgb.port }}&user=pgbouncer&sslmode=disable
{%-   endif %}
    - makedirs: True
    - mode: '0644'

monitoring-exporter-pgbouncer-package:
  pkg.installed:
    - name: {{ monitoring.exporter_packages.pgbouncer }}
    - require:
      - file: monitoring-exporter-pgbouncer-dropin
{%-   if exporter.config %}
      - file: monitoring-exporter-pgbouncer-config
{%-   endif %}
{%-   if exporter.compat %}
      - file: monitoring-exporter-pgbouncer-compat
{%-   endif %}
      - service: airflow-pgbouncer-running

monitoring-exporter-pgbouncer-running:
  service.running:
    - name: {{ monitoring.services.pgbouncer }}
    - enable: True
    - watch:
      - file: monitoring-exporter-pgbouncer-dropin
{%-   if exporter.config %}
      - file: monitoring-exporter-pgbouncer-config
{%-   endif %}
{%-   if exporter.compat %}
      - file: monitoring-exporter-pgbouncer-compat
{%-   endif %}
    - require:
      - pkg: monitoring-exporter-pgbouncer-package
      - service: airflow-pgbouncer-running
{%- endif %}
