# Install and configure Airflow, its housekeeping timers; the component SLSs
# (scheduler, webserver, ...) add their systemd units.
include:
  - airflow.install
  - airflow.config
  - airflow.housekeeping
