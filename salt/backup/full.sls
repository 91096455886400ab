{%- from 'backup/map.jinja' import backup with context %}
# On the repository host (role backup), from orch.airflow_upgrade before its
# migration: a full backup carrying the orchestrate's pillar backup_annotation
# (e.g. {airflow-upgrade: 3.3.2}), unless the repository holds one with it
# already (a second run, or a rerun after a failed host: no second backup).
# pgBackRest takes it from the Patroni leader; the WAL archive covers the rest.
backup-full-annotated:
  pgbackrest.backup_present:
    - name: {{ backup.stanza | json }}
    - type: full
    - config: {{ backup.config | json }}
    - annotation: {{ salt['pillar.get']('backup_annotation', {}) | json }}
