{%- from 'airflow/map.jinja' import airflow with context %}
include:
  - airflow.install

airflow-dirs:
  file.directory:
    - names:
      - {{ airflow.home }}/logs
      - {{ airflow.dags_folder }}
    - user: {{ airflow.user }}
    - group: {{ airflow.user }}
    - makedirs: True
    - require:
      - user: airflow-user

airflow-cfg:
  file.managed:
    - name: {{ airflow.home }}/airflow.cfg
    - source: salt://airflow/files/airflow.cfg.jinja
    - template: jinja
    - user: root
    - group: {{ airflow.user }}
    - mode: '0644'
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user

# Secrets (DB/broker URLs, keys) only here: 0640, never on a command line.
airflow-env:
  file.managed:
    - name: {{ airflow.env_file }}
    - source: salt://airflow/files/airflow.env.jinja
    - template: jinja
    - user: root
    - group: {{ airflow.user }}
    - mode: '0640'
    - show_changes: False
    - context:
        airflow: {{ airflow | json }}
    - require:
      - user: airflow-user
