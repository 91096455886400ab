"""Smoke test of the cluster: one task on a Celery worker that reaches the
metadata DB and reports where it ran. The orchestrate run triggers it after
bring-up and waits for success; drills use it to prove scheduling goes on.
Works on Airflow 2.9+ and 3.x."""

import socket
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def report_host(**context):
    host = socket.gethostname()
    print(f"airflow_ha_smoke ran on {host} for run {context['run_id']}")
    return host


with DAG(
    dag_id="airflow_ha_smoke",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-ha", "smoke"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
):
    PythonOperator(task_id="report_host", python_callable=report_host)
