{%- from 'base/map.jinja' import base with context %}
{%- if base.time_sync.active %}
{%- if base.time_sync.servers %}
base-chrony-config:
  file.managed:
    - name: {{ base.chrony.config }}
    - source: salt://base/files/chrony.conf.jinja
    - template: jinja
    - context:
        servers: {{ base.time_sync.servers | json }}
        os_family: {{ grains['os_family'] | json }}
    - require:
      - pkg: base-common-packages
    - watch_in:
      - service: base-chrony-running
{%- endif %}

base-chrony-running:
  service.running:
    - name: {{ base.chrony.service }}
    - enable: True
    - require:
      - pkg: base-common-packages
{%- else %}
# Time sync is off here (a container: the host keeps the clock).
{%- endif %}
