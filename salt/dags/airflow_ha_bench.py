"""Throughput and latency probes of the cluster (tools/lab/drill_throughput.py,
make bench): ``airflow_ha_fanout`` maps a trivial task over ``n`` items (run
conf, default 200), ``airflow_ha_chain`` runs ``n`` trivial tasks one after
the other (default 20), ``airflow_ha_burst`` holds each worker slot a few
seconds per task (the autoscaling drill). Every execution of a task, retries included, appends
one line to ``$AIRFLOW_HOME/drill/executions.log`` on the worker that ran it,
so a drill counts tasks run twice, not only tasks that failed.
Works on Airflow 2.9+ and 3.x."""

import os
import socket
import time
from datetime import datetime

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

# both DAGs: started only by the drills, one run at a time
DAG_ARGS = {"start_date": datetime(2024, 1, 1), "schedule": None, "catchup": False, "is_paused_upon_creation": False,
            "max_active_runs": 1, "tags": ["airflow-ha", "bench"], "default_args": {"retries": 2}}


def record_execution(context):
    """One line per execution: dag, run, task, map index, try, host, pid, time."""
    folder = os.path.join(os.environ.get("AIRFLOW_HOME", "/opt/airflow"), "drill")
    os.makedirs(folder, exist_ok=True)
    ti = context["ti"]
    line = (f"{ti.dag_id} {context['run_id']} {ti.task_id} {getattr(ti, 'map_index', -1)} {ti.try_number} "
            f"{socket.gethostname()} {os.getpid()} {time.time():.3f}\n")
    with open(os.path.join(folder, "executions.log"), "a") as f:
        f.write(line)


with DAG(dag_id="airflow_ha_fanout", **DAG_ARGS):

    @task
    def items(**context):
        return list(range(int((context["dag_run"].conf or {}).get("n", 200))))

    @task
    def work(item, **context):
        record_execution(context)
        return item

    work.expand(item=items())


# the autoscaling drill's burst: tasks that hold their worker slot ``sleep`` seconds (run conf, default 5), and
# no per-DAG cap below the schedulers' parallelism, so that the Celery queues back up on the running workers
with DAG(dag_id="airflow_ha_burst", max_active_tasks=256, **DAG_ARGS):

    @task(task_id="items")
    def burst_items(**context):
        return list(range(int((context["dag_run"].conf or {}).get("n", 200))))

    @task(task_id="work")
    def hold(item, **context):
        record_execution(context)
        time.sleep(float((context["dag_run"].conf or {}).get("sleep", 5)))
        return item

    hold.expand(item=burst_items())


with DAG(dag_id="airflow_ha_chain", **DAG_ARGS):
    previous = None
    for n in range(20):

        @task(task_id=f"step_{n:02d}")
        def step(**context):
            record_execution(context)

        current = step()
        if previous is not None:
            previous >> current
        previous = current
