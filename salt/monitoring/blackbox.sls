{%- from 'monitoring/map.jinja' import monitoring with context %}
{%- if monitoring.blackbox.enabled %}
# The blackbox exporter probes the Airflow components for this host's
# Prometheus (targets: _modules/ha_monitoring.py PROBES); it listens on
# loopback only. A drop-in sets its flags (before the package, which starts it).
include:
  - monitoring.repos
  - monitoring.prometheus
{%- if monitoring.tls.enabled %}
  - pki
{%- endif %}

monitoring-blackbox-dropin:
  file.managed:
    - name: /etc/systemd/system/{{ monitoring.services.blackbox }}.service.d/airflow-ha.conf
    - contents: |
        [Service]
        ExecStart=
        ExecStart={{ monitoring.blackbox.binary }} --config.file={{ monitoring.blackbox.config }} --web.listen-address={{ monitoring.blackbox.listen }}
    - makedirs: True
    - mode: '0644'

monitoring-blackbox-package:
  pkg.installed:
    - name: {{ monitoring.blackbox.package | json }}
    - require:
      - file: monitoring-blackbox-dropin

monitoring-blackbox-config:
  file.managed:
    - name: {{ monitoring.blackbox.config | json }}
    - source: salt://monitoring/files/blackbox.yml.jinja
    - template: jinja
    - makedirs: True
    - mode: '0644'
    - context:
        monitoring: {{ monitoring | json }}
    - check_cmd: {{ (monitoring.blackbox.binary ~ ' --config.check --config.file') | json }}
    - require:
      - pkg: monitoring-blackbox-package
{%- if monitoring.tls.enabled %}
      - file: pki-ca-cert
{%- endif %}
    - require_in:
      - file: monitoring-prometheus-config

monitoring-blackbox-running:
  service.running:
    - name: {{ monitoring.services.blackbox }}
    - enable: True
    # a restart (new flags, new config) takes a second and loses no state
    - watch:
      - file: monitoring-blackbox-dropin
      - file: monitoring-blackbox-config
{%- else %}
# blackbox exporter off (pillar monitoring:blackbox:enabled): no Airflow probes
{%- endif %}
