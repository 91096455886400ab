{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{#- Airflow 3 replaced the webserver with the api-server (UI + REST + execution API).
    --proxy-headers: the scheme HAProxy saw (X-Forwarded-Proto https), trusted
    from the haproxy hosts only (FORWARDED_ALLOW_IPS in the env file), so the
    login's token cookie is Secure behind the https VIP. #}
{{ service('webserver', ('api-server --port ' ~ airflow.api_port ~ ' --proxy-headers') if airflow.major | int >= 3
                        else ('webserver --port ' ~ airflow.api_port)) }}
