# Install and configure Airflow; the component SLSs (scheduler, webserver, ...)
# add their systemd units.
include:
  - airflow.install
  - airflow.config
