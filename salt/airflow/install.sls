{%- from 'airflow/map.jinja' import airflow with context %}
# The venv of airflow:version (airflow.venv) and the symlink every unit runs
# Airflow through pointed at it: a highstate with a new airflow:version
# builds the new venv beside the old one, switches, and the units restart
# (they watch the symlink). orch.airflow_upgrade does it one host at a time
# instead (pillar airflow:switch_venv false on its build and migrate steps).
include:
  - airflow.venv
{%- if airflow.link_venv %}

airflow-venv-current:
  file.symlink:
    - name: {{ airflow.venv }}
    - target: {{ airflow.venv_dir }}
    # one rename: no moment without the symlink
    - atomic: True
    - require:
      - cmd: airflow-installed
      - module: airflow-venv-adopted
{%- endif %}
