{%- from 'airflow/map.jinja' import airflow with context %}
# Run from ONE host by the orchestrate: schema migration, then the admin user.
include:
  - airflow

airflow-db-migrated:
  cmd.run:
    # the env file holds the DB URL: sourced, so no secret is on a command line
    - name: {{ ('set -a; . ' ~ airflow.env_file ~ '; ' ~ airflow.venv ~ '/bin/airflow db migrate') | json }}
    - runas: {{ airflow.user }}
    - shell: /bin/bash
    - unless: {{ ('set -a; . ' ~ airflow.env_file ~ '; ' ~ airflow.venv ~ '/bin/airflow db check-migrations -t 0') | json }}
    - output_loglevel: quiet
    - require:
      - file: airflow-env
      - file: airflow-cfg
      - cmd: airflow-installed
