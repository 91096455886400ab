{%- from 'airflow/service.jinja' import service with context %}
{{ service('scheduler', 'scheduler') }}
