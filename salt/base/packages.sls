{%- from 'base/map.jinja' import base with context %}
base-common-packages:
  pkg.installed:
    - pkgs: {{ base.packages | json }}
