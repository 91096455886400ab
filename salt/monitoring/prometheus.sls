{%- from 'monitoring/map.jinja' import monitoring, inventory with context %}
{%- from 'pki/map.jinja' import pki with context %}
include:
  - monitoring.repos
{%- if monitoring.tls.enabled %}
  # the cluster CA and this host's certificate: etcd and Patroni are scraped over https
  - pki
{%- endif %}

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

{%- if monitoring.tls.enabled %}

monitoring-prometheus-tls-key:
  # Prometheus' own copy of the host key (its client certificate for etcd),
  # readable by the prometheus user only; Prometheus re-reads the files of a
  # tls_config when they change, so a renewal needs no reload
  file.managed:
    - name: {{ monitoring.tls.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: {{ monitoring.user | json }}
    - group: {{ monitoring.user | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - pkg: monitoring-prometheus-packages
      - x509: pki-host-key
{%- endif %}

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
{%- if monitoring.tls.enabled %}
      # promtool checks that the files of every tls_config exist
      - file: pki-ca-cert
      - x509: pki-host-cert
      - file: monitoring-prometheus-tls-key
{%- endif %}

monitoring-prometheus-running:
  service.running:
    - name: {{ monitoring.services.prometheus }}
    - enable: True
    - reload: True
    - watch:
      - file: monitoring-prometheus-config
      - file: monitoring-prometheus-rules
