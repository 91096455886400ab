#!/usr/bin/python3
"""Managed by Salt (monitoring.exporters): Debian 12's prometheus-pgbouncer-exporter
(1.7) run with the SHOW STATS columns PgBouncer has had since 1.8.

The packaged exporter reads SHOW STATS' total_requests, which PgBouncer 1.8
replaced by total_xact_count and total_query_count: against Debian 12's
PgBouncer 1.18 it fails at its start (KeyError: 'total_requests'). This runs
the package's own exporter (its unit, its settings file) with that one table
of columns replaced; its pool, database and list metrics
(pgbouncer_waiting_clients, pgbouncer_active_clients, pgbouncer_pool_size, ...)
are unchanged. An exporter that no longer asks for total_requests runs as it
is."""

import sys

from prometheus_pgbouncer_exporter import cli, collectors

if "total_requests" in collectors.StatsCollector.metrics:
    collectors.StatsCollector.metrics = {
        "total_xact_count": ("transactions_total", "Total number of SQL transactions pooled by pgbouncer"),
        "total_query_count": ("queries_total", "Total number of SQL queries pooled by pgbouncer"),
        "total_received": ("received_bytes_total", "Total volume in bytes of network traffic received by pgbouncer"),
        "total_sent": ("sent_bytes_total", "Total volume in bytes of network traffic sent by pgbouncer"),
        "total_xact_time": ("transaction_microseconds_total",
                            "Total number of microseconds spent by pgbouncer in transactions"),
        "total_query_time": ("query_microseconds_total",
                             "Total number of microseconds spent by pgbouncer when actively connected to PostgreSQL"),
        "total_wait_time": ("client_wait_microseconds_total",
                            "Total number of microseconds clients waited for a server connection"),
    }

sys.exit(cli.main())
