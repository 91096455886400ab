{%- from 'base/map.jinja' import base with context %}
base-timezone:
  timezone.system:
    - name: {{ base.timezone | json }}
