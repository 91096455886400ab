{#- Prove the latest backup restores, without touching the cluster: on the
    repository host, restore it (and the archived WAL) into a scratch data
    directory, start a throwaway PostgreSQL there as the postgres user (Unix
    socket only, number backup:verify:socket), run backup:verify:query in
    backup:verify:database, stop it and delete the directory.
    salt-run state.orchestrate orch.backup_verify -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set b = orch.backup %}
{%- if not b %}

orch-backup-verify-refused:
  test.fail_without_changes:
    - name: "no minion has the backup role (and a postgres member) in its pillar: add 'backup' to one host's roles in the inventory"
    - failhard: True
{%- else %}

orch-backup-verify:
  salt.function:
    - name: pgbackrest.verify_restore
    - tgt: {{ b.host | json }}
    - kwarg:
        stanza: {{ b.stanza | json }}
        scratch_dir: {{ b.verify.scratch_dir | json }}
        port: {{ b.verify.socket | int }}
        database: {{ b.verify.database | json }}
        query: {{ b.verify.query | json }}
        pg_hosts: {{ b.members | length }}
        config: {{ b.config | json }}
        timeout: {{ b.timeout | int }}
    - failhard: True
{%- endif %}
