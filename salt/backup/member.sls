{%- from 'backup/map.jinja' import backup with context %}
# pgBackRest on a PostgreSQL member (included by the postgres state when the
# inventory has a backup host): Patroni's archive_command and restore_command
# (postgres/map.jinja) call it; the repository host backs this member up
# through it when it is the leader.
include:
  - backup.common
