"""A Celery app configured like Airflow's workers on the RabbitMQ cluster: the
settings come from the rendered salt/airflow/files/airflow_ha_celery.py.jinja
(env HA_CELERY_FILE) on top of Airflow's queue name, with TLS the
broker_use_ssl of env BROKER_USE_SSL. Its one task appends its
sequence number to RECORD_FILE, so a drill can count lost and repeated work.

    celery -A tests.helpers.celery_drill_app worker -P threads -c 4
"""

import importlib
import json
import os
import sys

from celery import Celery


def load_ha_settings(path):
    # imported by name, as Airflow does from $AIRFLOW_HOME/config: the
    # settings name a class of the module (worker_consumer)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    return importlib.import_module(os.path.splitext(os.path.basename(path))[0])


ha = load_ha_settings(os.environ["HA_CELERY_FILE"])
app = Celery("drill", broker=os.environ["BROKER_URL"])
# Airflow's own default queue name; everything else from the shipped settings
app.conf.update(ha.merged({"task_default_queue": "default"}, ha.HA_SETTINGS))
# amqps: the broker_use_ssl Airflow builds from [celery] ssl_* (env BROKER_USE_SSL, JSON)
if os.environ.get("BROKER_USE_SSL"):
    app.conf.broker_use_ssl = json.loads(os.environ["BROKER_USE_SSL"])


@app.task(name="record")
def record(seq):
    with open(os.environ["RECORD_FILE"], "a") as f:
        f.write(f"{seq}\n")
    return seq
