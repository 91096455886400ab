{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{{ service('flower', 'celery flower --port ' ~ airflow.flower_port) }}
