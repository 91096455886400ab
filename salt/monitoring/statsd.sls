{%- from 'monitoring/map.jinja' import monitoring with context %}
{%- if monitoring.statsd_exporter.enabled %}
# Airflow sends StatsD (udp 9125) here; Prometheus scrapes the result on 9102.
include:
  - monitoring.repos

monitoring-statsd-exporter-package:
  pkg.installed:
    - name: {{ monitoring.statsd_exporter.package }}

monitoring-statsd-exporter-mapping:
  file.managed:
    - name: {{ monitoring.config_dir }}/statsd_mapping.yml
    - source: salt://monitoring/files/statsd_mapping.yml
    - makedirs: True
    - mode: '0644'

monitoring-statsd-exporter-args:
  file.managed:
    - name: {{ monitoring.statsd_exporter.env_file }}
    - contents: >-
        ARGS="--statsd.mapping-config={{ monitoring.config_dir }}/statsd_mapping.yml
        --statsd.listen-udp=:9125 --web.listen-address=:9102"
    - mode: '0644'
    - require:
      - pkg: monitoring-statsd-exporter-package

monitoring-statsd-exporter-running:
  service.running:
    - name: {{ monitoring.services.statsd }}
    - enable: True
    - watch:
      - file: monitoring-statsd-exporter-mapping
      - file: monitoring-statsd-exporter-args
{%- else %}
# statsd_exporter is not packaged for this OS family (see osfamilymap.yaml):
# Airflow's StatsD metrics are not collected here.
{%- endif %}
