{%- from 'monitoring/map.jinja' import monitoring with context %}
{%- set grafana = monitoring.grafana %}
{%- set repo = grafana.repo %}
{%- if grafana.install or repo.enabled %}
include:
  - monitoring.repos
{%- if repo.enabled %}
{%-   if grains['os_family'] == 'Debian' %}

# Grafana's APT repository (or an internal mirror: pillar
# monitoring:grafana:repo:url and key_url), its key in a keyring of its own
monitoring-grafana-repo-key:
  file.managed:
    - name: {{ repo.keyring | json }}
    - source: {{ repo.key_url | json }}
{%-     if repo.key_hash %}
    - source_hash: {{ repo.key_hash | json }}
{%-     else %}
    # the key is the trust anchor itself, fetched over https (pin it with key_hash)
    - skip_verify: True
{%-     endif %}
    - makedirs: True
    - mode: '0644'

monitoring-grafana-repo:
  pkgrepo.managed:
    - name: {{ ('deb [signed-by=' ~ repo.keyring ~ '] ' ~ repo.url ~ ' ' ~ repo.dist) | json }}
    - file: /etc/apt/sources.list.d/grafana.list
    - clean_file: True
    - aptkey: False
    - refresh: True
    - require:
      - file: monitoring-grafana-repo-key
    - require_in:
      - pkg: monitoring-grafana-package
{%-   else %}

# Grafana's YUM repository (or an internal mirror: pillar
# monitoring:grafana:repo:url and key_url)
monitoring-grafana-repo:
  pkgrepo.managed:
    - name: grafana
    - humanname: Grafana
    - baseurl: {{ repo.url | json }}
    - gpgkey: {{ repo.key_url | json }}
    - gpgcheck: 1
    - repo_gpgcheck: 1
    - require_in:
      - pkg: monitoring-grafana-package
{%-   endif %}
{%- endif %}

monitoring-grafana-package:
  pkg.installed:
    - name: {{ grafana.package | json }}

monitoring-grafana-admin-password:
  file.managed:
    - name: {{ monitoring.grafana.env_file }}
    # double-quoted as systemd and a shell read it (airflow_ha.env_quote)
    - contents: {{ ('GF_SECURITY_ADMIN_PASSWORD='
                    ~ salt['airflow_ha.env_quote'](salt['pillar.get']('secrets:grafana:admin_password'))) | json }}
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
# Grafana off: neither its repository (pillar monitoring:grafana:repo:enabled)
# nor install: True. Its provisioning files and dashboards are still
# validated by the tests.
{%- endif %}
