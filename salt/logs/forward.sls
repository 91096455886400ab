{%- from 'logs/map.jinja' import logs with context %}
{%- from 'pki/map.jinja' import pki with context %}
{%- from 'common/tofs.jinja' import files_switch with context %}
# Every host: rsyslog forwards everything it logs (the journal and syslog,
# auth/authpriv included: sshd, sudo, PostgreSQL, Patroni, Airflow's units) to
# each log host of the inventory over TLS, both sides checking the other's
# certificate of the cluster CA. A disk-assisted queue per log host keeps
# what is logged while it is down (saved across a restart of rsyslog) and
# delivers it when it is back. A worker or triggerer host also sends its task
# log files' lines to the api-server hosts (logs.task_log_copies), a RabbitMQ
# host its RabbitMQ log file to the log hosts.
{%- if logs.servers and logs.tls_fix %}
logs-forward-needs-tls:
  test.fail_without_changes:
    - name: {{ logs.tls_fix | json }}
    - failhard: True
{%- elif logs.managed %}
include:
  - pki

logs-rsyslog-packages:
  pkg.installed:
    - pkgs: {{ logs.packages | json }}

logs-rsyslog-tls-key:
  # rsyslog's own copy of the host key (rsyslog runs as root)
  file.managed:
    - name: {{ logs.tls.key_file | json }}
    - source: {{ pki.host_key | json }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: False
    - require:
      - x509: pki-host-key

logs-forward-spool-dir:
  file.directory:
    - name: {{ logs.spool_dir | json }}
    - user: root
    - group: root
    - mode: '0700'
    - require:
      - pkg: logs-rsyslog-packages

logs-forward-config:
  file.managed:
    - name: {{ (logs.config_dir ~ '/60-airflow-ha-forward.conf') | json }}
    - source: {{ files_switch('logs', ['forward.conf.jinja'], 'logs-forward-config') }}
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        logs: {{ logs | json }}
    - check_cmd: rsyslogd -N1 -f
    - require:
      - pkg: logs-rsyslog-packages
      - file: logs-forward-spool-dir

{%- if logs.read_journal %}

logs-journald-no-syslog-forward:
  # rsyslog reads the journal (imjournal in logs-forward-config): the socket copy would double every line
  file.managed:
    - name: /etc/systemd/journald.conf.d/60-airflow-ha-rsyslog-reads-journal.conf
    - makedirs: True
    - mode: '0644'
    - contents: |
        # Managed by Salt (logs.forward): rsyslog reads the journal itself (imjournal).
        [Journal]
        ForwardToSyslog=no
    # after rsyslog runs with imjournal: a few lines twice on the switch rather than a gap
    - require:
      - service: logs-rsyslog-running

logs-journald-running:
  service.running:
    - name: systemd-journald
    - watch:
      - file: logs-journald-no-syslog-forward
{%- endif %}

logs-rsyslog-running:
  service.running:
    - name: {{ logs.service }}
    - enable: True
    - require:
      - file: pki-ca-cert
    - watch:
      - file: logs-forward-config
      # rsyslog's TLS driver reads its certificate and key at start only
      - file: logs-rsyslog-tls-key
      - x509: pki-host-cert
{%- endif %}
