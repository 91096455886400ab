"""Worker-loss drill: one task that holds a worker slot for ``seconds`` (run
conf, default 60) and reports where, and on which try, it finished.
tools/lab/drill.py kills the Celery worker running it; the scheduler finds the
task without a heartbeat, and its retry must succeed on another worker.
Works on Airflow 2.9+ and 3.x."""

import socket
import time
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def hold_worker_slot(**context):
    seconds = float((context["dag_run"].conf or {}).get("seconds", 60))
    host = socket.gethostname()
    print(f"airflow_ha_drill try {context['ti'].try_number} on {host}: holding for {seconds} s")
    time.sleep(seconds)
    return host


with DAG(
    dag_id="airflow_ha_drill",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["airflow-ha", "drill"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
):
    PythonOperator(task_id="hold_worker_slot", python_callable=hold_worker_slot)
