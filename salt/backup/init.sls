{%- from 'backup/map.jinja' import backup with context %}
{%- from 'postgres/map.jinja' import postgres with context %}
# The pgBackRest repository host (role `backup`, one host, no PostgreSQL
# member): the encrypted repository, the full and differential backups of
# whichever member leads (systemd timers), the metrics of node_exporter's
# textfile collector, and PostgreSQL's binaries for orch.backup_verify's
# throwaway restore. The stanza and the first backup: backup.stanza, once the
# cluster is up (orch.bringup's backup-stanza step).
include:
  - backup.common

{%- for name, repo in postgres.get('repos', {}).items() %}
backup-postgres-repo-{{ name }}:
  pkgrepo.managed:
    - name: {{ name | json }}
    - humanname: {{ repo.humanname | json }}
    - baseurl: {{ repo.baseurl | json }}
    - gpgkey: {{ repo.gpgkey | json }}
    - gpgcheck: 1
    - require_in:
      - pkg: backup-postgres-packages
{%- endfor %}

backup-postgres-packages:
  # the server binaries only (pg_ctl, postgres, psql): no cluster of their own runs here
  pkg.installed:
    - pkgs: {{ postgres.packages | json }}
    - require_in:
      - pkg: backup-packages

backup-postgres-packaged-cluster-stopped:
  service.dead:
    - name: {{ postgres.packaged_cluster_service }}
    - enable: False
    - require:
      - pkg: backup-postgres-packages

backup-repository-dir:
  file.directory:
    - name: {{ backup.repo_path | json }}
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0750'
    - makedirs: True
    - require:
      - pkg: backup-packages

backup-verify-dir:
  file.directory:
    - name: {{ backup.verify.scratch_dir | json }}
    - user: {{ backup.user | json }}
    - group: {{ backup.user | json }}
    - mode: '0700'
    - require:
      - pkg: backup-packages

backup-textfile-dir:
  file.directory:
    - name: {{ backup.textfile_dir | json }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

backup-metrics-script:
  # the pgbackrest execution module, run as a script (no Salt needed)
  file.managed:
    - name: {{ backup.metrics_script | json }}
    - source: salt://_modules/pgbackrest.py
    - mode: '0755'

{%- set metrics_cmd = backup.metrics_script ~ ' ' ~ backup.stanza ~ ' ' ~ backup.metrics_file ~ ' ' ~ backup.repo_path ~ ' ' ~ backup.config %}

backup-metrics-service:
  file.managed:
    - name: /etc/systemd/system/airflow-ha-backup-metrics.service
    - mode: '0644'
    - contents: |
        # Managed by Salt (backup): airflow_ha_backup_* for node_exporter's textfile collector.
        [Unit]
        Description=pgBackRest metrics for node_exporter
        [Service]
        Type=oneshot
        # root: the textfile directory is root's; pgbackrest itself runs as {{ backup.user }}
        ExecStart={{ metrics_cmd }}

{%- for kind in ['full', 'diff'] %}

backup-{{ kind }}-service:
  file.managed:
    - name: /etc/systemd/system/airflow-ha-backup-{{ kind }}.service
    - mode: '0644'
    - contents: |
        # Managed by Salt (backup): a {{ kind }} backup of the leader, from the repository host.
        [Unit]
        Description=pgBackRest {{ kind }} backup of stanza {{ backup.stanza }}
        After=network-online.target
        Wants=network-online.target
        [Service]
        Type=oneshot
        User={{ backup.user }}
        Group={{ backup.user }}
        ExecStart=/usr/bin/pgbackrest --config={{ backup.config }} --stanza={{ backup.stanza }} --type={{ kind }} backup
        # the metrics, as root, whatever the backup's outcome (a failure keeps the old timestamp)
        ExecStopPost=+{{ metrics_cmd }}
        TimeoutStartSec={{ backup.timeout }}
        Nice=10
        IOSchedulingClass=best-effort
        IOSchedulingPriority=7

{%- endfor %}

{%- for kind in ['full', 'diff', 'metrics'] %}

backup-{{ kind }}-timer:
  file.managed:
    - name: /etc/systemd/system/airflow-ha-backup-{{ kind }}.timer
    - mode: '0644'
    - contents: |
        # Managed by Salt (backup): pillar backup:schedule:{{ kind }}.
        [Unit]
        Description=pgBackRest {{ kind }} ({{ backup.schedule[kind] }})
        [Timer]
        OnCalendar={{ backup.schedule[kind] }}
        Persistent=true
        RandomizedDelaySec={{ '60' if kind == 'metrics' else '300' }}
        [Install]
        WantedBy=timers.target

backup-{{ kind }}-timer-running:
  service.running:
    - name: airflow-ha-backup-{{ kind }}.timer
    - enable: True
    - watch:
      - file: backup-{{ kind }}-timer
      - file: backup-{{ kind }}-service
    - require:
      - file: backup-config
      - file: backup-repository-dir
      - file: backup-metrics-script
      - file: backup-textfile-dir
{%- endfor %}
