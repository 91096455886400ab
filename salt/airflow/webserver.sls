{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{#- Airflow 3 replaced the webserver with the api-server (UI + REST + execution API) #}
{{ service('webserver', ('api-server' if airflow.major | int >= 3 else 'webserver') ~ ' --port ' ~ airflow.api_port) }}
