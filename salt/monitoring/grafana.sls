{%- from 'monitoring/map.jinja' import monitoring with context %}
{%- if monitoring.grafana.enabled %}
include:
  - monitoring.repos

monitoring-grafana-package:
  pkg.installed:
    - name: {{ monitoring.grafana.package }}

monitoring-grafana-admin-password:
  file.managed:
    - name: {{ monitoring.grafana.env_file }}
    - contents: GF_SECURITY_ADMIN_PASSWORD={{ salt['pillar.get']('secrets:grafana:admin_password') | json }}
    - mode: '0640'
    - group: grafana
    - show_changes: False
    - require:
      - pkg: monitoring-grafana-package

monitoring-grafana-datasource:
  file.managed:
    - name: /etc/grafana/provisioning/datasources/airflow-ha.yml
    - source: salt://monitoring/files/grafana-datasource.yml.jinja
    - template: jinja
    - makedirs: True
    - require:
      - pkg: monitoring-grafana-package

monitoring-grafana-dashboard-provider:
  file.managed:
    - name: /etc/grafana/provisioning/dashboards/airflow-ha.yml
    - source: salt://monitoring/files/grafana-dashboards.yml.jinja
    - template: jinja
    - makedirs: True
    - context:
        dashboards_dir: {{ monitoring.grafana.dashboards_dir | json }}
    - require:
      - pkg: monitoring-grafana-package

monitoring-grafana-dashboards:
  file.recurse:
    - name: {{ monitoring.grafana.dashboards_dir }}
    - source: salt://monitoring/files/dashboards
    - include_pat: '*.json'
    - clean: True
    - makedirs: True
    - require:
      - pkg: monitoring-grafana-package

monitoring-grafana-running:
  service.running:
    - name: {{ monitoring.services.grafana }}
    - enable: True
    - watch:
      - file: monitoring-grafana-admin-password
      - file: monitoring-grafana-datasource
      - file: monitoring-grafana-dashboard-provider
      - file: monitoring-grafana-dashboards
{%- else %}
# Grafana is not packaged for this OS family on the reachable registries (see
# osfamilymap.yaml); its provisioning files and dashboards are still
# validated by the tests.
{%- endif %}
