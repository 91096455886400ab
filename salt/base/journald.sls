{%- from 'base/map.jinja' import base with context %}
# journald's disk use from pillar base:journald: a drop-in of ours, so the
# package's journald.conf stays untouched; restarted on change only.
base-journald-dropin:
  file.managed:
    - name: /etc/systemd/journald.conf.d/airflow-ha.conf
    - makedirs: True
    - mode: '0644'
    - contents: |
        # Managed by Salt (base): pillar base:journald.
        [Journal]
{%- if base.journald.system_max_use %}
        SystemMaxUse={{ base.journald.system_max_use }}
{%- endif %}
{%- if base.journald.runtime_max_use %}
        RuntimeMaxUse={{ base.journald.runtime_max_use }}
{%- endif %}

base-journald-running:
  service.running:
    - name: systemd-journald
    - watch:
      - file: base-journald-dropin
