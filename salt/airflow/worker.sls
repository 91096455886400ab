{%- from 'airflow/service.jinja' import service with context %}
{{ service('worker', 'celery worker') }}
