{%- from 'monitoring/map.jinja' import monitoring with context %}
include:
  - monitoring.prometheus

monitoring-alertmanager-config:
  file.managed:
    - name: {{ monitoring.alertmanager_config }}
    - source: salt://monitoring/files/alertmanager.yml.jinja
    - template: jinja
    - mode: '0640'
    - group: {{ monitoring.user }}
    - context:
        monitoring: {{ monitoring | json }}
    - check_cmd: /usr/bin/amtool check-config
    - require:
      - pkg: monitoring-prometheus-packages

monitoring-alertmanager-running:
  service.running:
    - name: {{ monitoring.services.alertmanager }}
    - enable: True
    - reload: True
    - watch:
      - file: monitoring-alertmanager-config
