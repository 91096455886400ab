# The monitoring role: Prometheus with the cluster's targets and alert rules,
# Alertmanager, statsd_exporter for Airflow's metrics, Grafana.
include:
  - monitoring.repos
  - monitoring.prometheus
  - monitoring.alertmanager
  - monitoring.statsd
  - monitoring.grafana
