{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{#- Airflow 3 replaced the webserver with the api-server (UI + REST + execution API).
    --proxy-headers: the scheme HAProxy saw (X-Forwarded-Proto https), trusted
    from the haproxy hosts only (FORWARDED_ALLOW_IPS in the env file), so the
    login's token cookie is Secure behind the https VIP. #}
{%- if airflow.major | int >= 3 %}
{{ service('webserver', 'api-server --port ' ~ airflow.api_port ~ ' --proxy-headers',
           watch_files=['airflow-audit-plugin']) }}

# A root middleware of the api-server: every 403 into Airflow's audit log
# (event permission_denied, with the user), which Airflow does not record.
airflow-audit-plugin:
  file.managed:
    - name: {{ airflow.plugins_folder }}/airflow_ha_audit.py
    - source: salt://airflow/files/airflow_ha_audit.py
    - makedirs: True
    - user: root
    - group: {{ airflow.user }}
    - mode: '0644'
    - require:
      - user: airflow-user
{%- else %}
{{ service('webserver', 'webserver --port ' ~ airflow.api_port) }}
{%- endif %}
