{%- from 'base/map.jinja' import base with context %}
# RedHat: SELinux enforcing, now and after a reboot. Nothing on Debian
# (no selinux_mode in its osfamilymap entry).
{%- if base.get('selinux_mode') %}
base-selinux-mode:
  selinux.mode:
    - name: {{ base.selinux_mode | json }}
    - require:
      - pkg: base-common-packages
{%- endif %}
