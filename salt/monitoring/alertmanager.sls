{%- from 'monitoring/map.jinja' import monitoring, this_host with context %}
{%- set peers = salt['ha_inventory.ips']('monitoring') | reject('equalto', this_host.ip) | list %}
include:
  - monitoring.prometheus
{%- if monitoring.get('alertmanager_env_file') %}

# Alertmanagers of several monitoring hosts gossip on 9094 (pillar/ports.sls)
# to send each alert once; a single one keeps no cluster port open.
monitoring-alertmanager-cluster-flags:
  file.managed:
    - name: {{ monitoring.alertmanager_env_file }}
    - contents: |
        # Managed by Salt (monitoring.alertmanager)
{%-   if peers %}
        ARGS="--cluster.listen-address={{ this_host.ip }}:9094{% for ip in peers %} --cluster.peer={{ ip }}:9094{% endfor %}"
{%-   else %}
        ARGS="--cluster.listen-address="
{%-   endif %}
    - mode: '0644'
    - require:
      - pkg: monitoring-prometheus-packages
    - require_in:
      - service: monitoring-alertmanager-running

# flags are read at start only (the service state below reloads, for config)
monitoring-alertmanager-restarted-for-cluster-flags:
  module.run:
    - service.restart:
      - name: {{ monitoring.services.alertmanager }}
    - onchanges:
      - file: monitoring-alertmanager-cluster-flags
    - require:
      - service: monitoring-alertmanager-running
{%- endif %}

{%- if monitoring.autoscale.standby %}

monitoring-alertmanager-autoscale-token:
  # the bearer token of salt-api's autoscaling webhook (secrets:autoscale:webhook_token)
  file.managed:
    - name: {{ monitoring.autoscale.token_file | json }}
    - contents: {{ salt['pillar.get']('secrets:autoscale:webhook_token') | json }}
    - user: root
    - group: {{ monitoring.user }}
    - mode: '0640'
    - show_changes: False
    - require:
      - pkg: monitoring-prometheus-packages
    - require_in:
      - file: monitoring-alertmanager-config
{%- endif %}

monitoring-alertmanager-config:
  file.managed:
    - name: {{ monitoring.alertmanager_config }}
    - source: salt://monitoring/files/alertmanager.yml.jinja
    - template: jinja
    - mode: '0640'
    - group: {{ monitoring.user }}
    # may hold the SMTP password (pillar secrets:alertmanager:smtp_password)
    - show_changes: False
    - context:
        monitoring: {{ monitoring | json }}
        smtp_password: {{ salt['pillar.get']('secrets:alertmanager:smtp_password', '') | json }}
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
