{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/components.jinja' import components, units as component_units %}
{%- import 'common/inventory.jinja' as common with context %}
# orch.airflow_upgrade, one host at a time: this host's Airflow units onto the
# venv of airflow:version (built before by airflow.venv): its Celery worker
# drained (airflow:drain_timeout), its running units stopped, the symlink
# switched, the units started. A host already on it: no change, no restart.
{%- set units = [] %}
{%- for component in components if component in common.this_host.roles %}
{%-   do units.append(component_units[component]) %}
{%- endfor %}

airflow-venv-switched:
  airflow_ha.venv_switched:
    - name: {{ airflow.venv | json }}
    - target: {{ airflow.venv_dir | json }}
    - units: {{ units | json }}
    # a standby worker (inventory standby: true) starts again only if it ran
    - only_running: {{ (['airflow-worker'] if airflow.worker_standby else []) | json }}
    - drain: {{ airflow.worker_host | json }}
    - drain_timeout: {{ airflow.get('drain_timeout', 600) | int }}
