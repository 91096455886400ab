{%- from 'monitoring/map.jinja' import monitoring, this_host with context %}
# Exporters on every host: node_exporter; postgres_exporter beside PostgreSQL
# (peer authentication over the local socket as the pg_monitor role the
# postgres state creates, so no password is needed).
include:
  - monitoring.repos

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
