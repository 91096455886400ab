{%- from 'airflow/service.jinja' import service with context %}
{{ service('dag-processor', 'dag-processor') }}
