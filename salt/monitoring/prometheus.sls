{%- from 'monitoring/map.jinja' import monitoring, inventory with context %}
include:
  - monitoring.repos

monitoring-prometheus-packages:
  pkg.installed:
    - pkgs: {{ monitoring.packages | json }}

monitoring-prometheus-rules:
  file.managed:
    - name: {{ monitoring.config_dir }}/rules/airflow-ha.yml
    - source: salt://monitoring/files/alert_rules.yml.jinja
    - template: jinja
    - makedirs: True
    - mode: '0644'
    - context:
        monitoring: {{ monitoring | json }}
    - check_cmd: /usr/bin/promtool check rules
    - require:
      - pkg: monitoring-prometheus-packages

monitoring-prometheus-config:
  file.managed:
    - name: {{ monitoring.config_dir }}/prometheus.yml
    - source: salt://monitoring/files/prometheus.yml.jinja
    - template: jinja
    - mode: '0644'
    - context:
        monitoring: {{ monitoring | json }}
        inventory_name: {{ inventory.name | json }}
    - check_cmd: /usr/bin/promtool check config
    - require:
      - file: monitoring-prometheus-rules

monitoring-prometheus-running:
  service.running:
    - name: {{ monitoring.services.prometheus }}
    - enable: True
    - reload: True
    - watch:
      - file: monitoring-prometheus-config
      - file: monitoring-prometheus-rules
