{%- from 'monitoring/map.jinja' import monitoring with context %}
{%- for name, repo in monitoring.get('repos', {}).items() %}
monitoring-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: monitoring-exporter-node-package
{%- endfor %}
