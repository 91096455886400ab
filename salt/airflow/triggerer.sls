{%- from 'airflow/service.jinja' import service with context %}
{{ service('triggerer', 'triggerer') }}
