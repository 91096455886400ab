{%- from 'logs/map.jinja' import logs with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
# An api-server host (role webserver): rsyslog takes the task log lines the
# worker and triggerer hosts send (logs.forward) and appends each to
# <its path><copy_suffix> in Airflow's base_log_folder here (Airflow's reader
# globs the path's name), owned by Airflow's user, so the API
# serves a finished task's log when the worker that ran it is gone
# (docs/logs.md). Needs pillar tls:enabled (mutual x509); on a log host the
# receiver's file holds this listener (one imtcp module per rsyslog).
{%- if logs.task_logs.receive and logs.managed %}
include:
  - logs.forward
  - airflow.config
{%- if logs.is_server %}
  - logs
{%- else %}

logs-task-log-copies-config:
  file.managed:
    - name: {{ (logs.config_dir ~ '/20-airflow-ha-task-log-copies.conf') | json }}
    - source: {{ files_switch('logs', ['task_log_copies.conf.jinja'], 'logs-task-log-copies-config') }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        logs: {{ logs | json }}
    - check_cmd: rsyslogd -N1 -f
    - require:
      - pkg: logs-rsyslog-packages
      # rsyslog creates the copies' directories and files as Airflow's user
      - file: airflow-dirs
    - watch_in:
      - service: logs-rsyslog-running
{%- endif %}
{%- endif %}
