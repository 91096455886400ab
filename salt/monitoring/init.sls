# The monitoring role: Prometheus with the cluster's targets and alert rules,
# Alertmanager, the blackbox exporter probing the Airflow components,
# statsd_exporter for Airflow's metrics (where packaged), Grafana.
include:
  - monitoring.repos
  - monitoring.prometheus
  - monitoring.blackbox
  - monitoring.alertmanager
  - monitoring.statsd
  - monitoring.grafana
