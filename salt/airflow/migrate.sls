{%- from 'airflow/map.jinja' import airflow with context %}
# Run from ONE host by the orchestrate: schema migration, then the admin user.
# From the venv of airflow:version (venv_dir): orch.airflow_upgrade migrates
# with the new release while the symlink still names the running one.
include:
  - airflow

{#- the env file holds the DB URLs: sourced, so no secret is on a command line.
    With PgBouncer (pillar airflow:pgbouncer) these one-off commands take the
    direct URL to the leader through HAProxy's :5000: `airflow db migrate`
    holds a session-level advisory lock (pg_advisory_lock, and SET
    lock_timeout) for the whole migration, which transaction pooling would
    hand to other clients' transactions (docs/architecture.md, PgBouncer). #}
{%- set env = 'set -a; . ' ~ airflow.env_file ~ '; '
              ~ ('AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN"; '
                 if airflow.pgbouncer.enabled else '') %}
airflow-db-migrated:
  cmd.run:
    - name: {{ (env ~ airflow.venv_dir ~ '/bin/airflow db migrate') | json }}
    - runas: {{ airflow.user }}
    - shell: /bin/bash
    - unless: {{ (env ~ airflow.venv_dir ~ '/bin/airflow db check-migrations -t 0') | json }}
    - output_loglevel: quiet
    # its output can quote the DB and broker URLs: never into the job return
    - hide_output: True
    - require:
      - file: airflow-env
      - file: airflow-cfg
      - cmd: airflow-installed

# Airflow's audit log onto PostgreSQL's server log, and so to the log host
# (docs/logs.md): a trigger on the table `log`, made once after the schema.
airflow-audit-trigger-script:
  file.managed:
    - name: {{ airflow.home }}/bin/airflow_ha_audit_trigger.py
    - source: salt://airflow/files/airflow_ha_audit_trigger.py
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'

{%- set audit_trigger = env ~ airflow.venv_dir ~ '/bin/python ' ~ airflow.home ~ '/bin/airflow_ha_audit_trigger.py' %}
airflow-audit-trigger:
  cmd.run:
    - name: {{ audit_trigger | json }}
    - runas: {{ airflow.user }}
    - shell: /bin/bash
    - unless: {{ (audit_trigger ~ ' --check') | json }}
    - output_loglevel: quiet
    - hide_output: True
    - require:
      - cmd: airflow-db-migrated
      - file: airflow-audit-trigger-script
{%- if airflow.fab %}

# The FAB auth manager (Airflow 3 by default, 2.x always) keeps its users in
# the DB: the break-glass admin user with the pillar password, created (or
# its role and password put back) by a script reading the 0600 password file:
# the password is on no command line (`airflow users create` would take it
# as an argument). The directory's users are made by their first login; this
# one never goes to the directory.
airflow-admin-script:
  file.managed:
    - name: {{ airflow.home }}/bin/airflow_ha_admin.py
    - source: salt://airflow/files/airflow_ha_admin.py
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'

{%- set admin = env ~ airflow.venv_dir ~ '/bin/python ' ~ airflow.home
                ~ '/bin/airflow_ha_admin.py ' %}
airflow-admin-user:
  cmd.run:
    - name: {{ (admin ~ airflow.admin_passwords_file) | json }}
    - runas: {{ airflow.user }}
    - shell: /bin/bash
    # exits 0 when the user exists with the Admin role and the pillar password
    - unless: {{ (admin ~ '--check ' ~ airflow.admin_passwords_file) | json }}
    - output_loglevel: quiet
    - hide_output: True
    - require:
      - cmd: airflow-db-migrated
      - file: airflow-admin-password
      - file: airflow-admin-script
      - file: airflow-webserver-config
{%- endif %}
