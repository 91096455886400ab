{%- from 'logs/map.jinja' import logs with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
# The central log host (role logs): rsyslog takes every host's logs over TLS
# (mutual x509: certificates of the cluster CA naming an inventory host) on
# the port map's port and writes <remote_dir>/<host>/<program>.log (0700
# directories, 0600 files, root); logrotate keeps logs:retention_days days.
# It forwards its own logs too (logs.forward, every host), to itself.
# airflow-ha-pan-scan (logs:pan_scan_script) searches what it received for
# card numbers (PAN) and prints them masked.
{%- if logs.tls_fix %}
logs-needs-tls:
  test.fail_without_changes:
    - name: {{ logs.tls_fix | json }}
    - failhard: True
{%- else %}
include:
  - logs.forward
{%- if logs.task_logs.receive %}
  # an api-server here too: this receiver also takes the task log copies (logs.task_log_copies)
  - airflow.config
{%- endif %}

logs-remote-dir:
  file.directory:
    - name: {{ logs.remote_dir | json }}
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True

logs-receiver-config:
  file.managed:
    - name: {{ (logs.config_dir ~ '/10-airflow-ha-receiver.conf') | json }}
    - source: {{ files_switch('logs', ['receiver.conf.jinja'], 'logs-receiver-config') }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        logs: {{ logs | json }}
    - check_cmd: rsyslogd -N1 -f
    - require:
      - pkg: logs-rsyslog-packages
      - file: logs-remote-dir
{%- if logs.task_logs.receive %}
      - file: airflow-dirs
{%- endif %}
    - watch_in:
      - service: logs-rsyslog-running

logs-retention:
  # logrotate's own daily timer (Debian and RedHat) runs it; `logrotate -d` checks it first
  file.managed:
    - name: {{ logs.logrotate_config | json }}
    - source: {{ files_switch('logs', ['logrotate.conf.jinja'], 'logs-retention') }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        logs: {{ logs | json }}
    - check_cmd: logrotate -d
    - require:
      - pkg: logs-rsyslog-packages

logs-pan-scan-script:
  # run by hand or by the logs drill (docs/logs.md); its default directory is
  # the default remote_dir: give another one on its command line
  file.managed:
    - name: {{ logs.pan_scan_script | json }}
    - source: salt://logs/files/airflow-ha-pan-scan.py
    - user: root
    - group: root
    - mode: '0700'
{%- endif %}
