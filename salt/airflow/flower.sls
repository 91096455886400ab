{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{#- the login (FLOWER_BASIC_AUTH) comes from its own env file, not the command line #}
{{ service('flower', 'celery flower --port ' ~ airflow.flower_port, env_files=[airflow.flower_env_file],
           watch_files=['airflow-flower-env']) }}

# Flower's basic auth (user:password, FLOWER_BASIC_AUTH) in an env file of
# its unit only: not on its command line, not in the shared env file.
airflow-flower-env:
  file.managed:
    - name: {{ airflow.flower_env_file }}
    - contents: {{ ("FLOWER_BASIC_AUTH=" ~ salt['airflow_ha.env_quote'](airflow.flower_user ~ ":"
                    ~ salt['pillar.get']('secrets:airflow:flower_password', ''))) | json }}
    - user: root
    - group: {{ airflow.user }}
    - mode: '0640'
    - show_changes: False
    - require:
      - user: airflow-user
