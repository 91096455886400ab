# Managed by Salt (salt/airflow): edits are overwritten.
"""Flask settings of the Airflow 2 webserver: the FAB auth manager with its
users and hashed passwords in the metadata DB (the admin user is made by
salt/airflow/files/airflow_ha_admin.py), CSRF protection on. Airflow 3 does
not read this file."""

from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
