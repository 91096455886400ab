{%- from 'monitoring/map.jinja' import monitoring, this_host with context %}
# Exporters on every host: node_exporter; postgres_exporter beside PostgreSQL
# (peer authentication over the local socket, so no password is needed).
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

monitoring-exporter-postgres-package:
  pkg.installed:
    - name: {{ monitoring.exporter_packages.postgres }}

monitoring-exporter-postgres-dsn:
  file.managed:
    - name: {{ monitoring.postgres_exporter_env }}
    - contents: DATA_SOURCE_NAME="user=postgres host=/var/run/postgresql sslmode=disable"
    - mode: '0644'
    - require:
      - pkg: monitoring-exporter-postgres-package

monitoring-exporter-postgres-running:
  service.running:
    - name: {{ monitoring.services.postgres }}
    - enable: True
    - watch:
      - file: monitoring-exporter-postgres-dsn
{%- endif %}
