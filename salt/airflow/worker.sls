{%- from 'airflow/map.jinja' import airflow with context %}
{%- from 'airflow/service.jinja' import service with context %}
{#- the Celery queues of this host (inventory `queues`, its worker pools) and
    pillar airflow:worker_autoscale; a standby host's (inventory `standby`)
    unit is left stopped, for the autoscaling to start (orch.autoscale) #}
{{ service('worker', salt['airflow_ha.worker_args'](airflow.worker_queues, airflow.worker_autoscale),
           standby=airflow.worker_standby) }}
