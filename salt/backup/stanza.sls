{%- from 'backup/map.jinja' import backup with context %}
# Once the cluster is up (orch.bringup's backup-stanza step, after postgres):
# the stanza in the repository, `pgbackrest check` (every member answers, a WAL
# switch reaches the archive), a first full backup when there is none, and
# the metrics. Idempotent: a second apply changes nothing.
include:
  - backup

backup-stanza-ready:
  pgbackrest.stanza_ready:
    - name: {{ backup.stanza | json }}
    - config: {{ backup.config | json }}
    - require:
      - sls: backup
{%- if backup.first_backup %}

backup-first-full:
  pgbackrest.backup_present:
    - name: {{ backup.stanza | json }}
    - type: full
    - config: {{ backup.config | json }}
    - require:
      - pgbackrest: backup-stanza-ready
{%- endif %}

backup-metrics-written:
  cmd.run:
    - name: systemctl start airflow-ha-backup-metrics.service
    - creates: {{ backup.metrics_file | json }}
    - require:
      - pgbackrest: backup-stanza-ready
{%- if backup.first_backup %}
      - pgbackrest: backup-first-full
{%- endif %}
