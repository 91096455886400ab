# Managed by Salt (salt/airflow): edits are overwritten.
"""Airflow's audit log (table ``log``) onto PostgreSQL's server log, one line
per row, so that it reaches the log host with the rest of PostgreSQL's log
(journal, rsyslog: salt/logs) and stays there when someone deletes rows:

    LOG:  airflow_ha_audit {"dttm": ..., "event": ..., "owner": ..., ...}

An AFTER INSERT trigger, so every writer is covered (the API's action
logging, the scheduler, the CLI). The row as JSON: Airflow masks connection
and variable values in ``extra`` before it writes the row.

    python airflow_ha_audit_trigger.py [--check]

With --check nothing changes: exit 0 when the function and the trigger are as
here, 1 otherwise (the state's `unless`). Run by the venv's python with the
environment of the Airflow env file: the DB URL is on no command line.
"""

import os
import sys

import sqlalchemy

FUNCTION = "airflow_ha_audit_log"
TRIGGER = "airflow_ha_audit"
BODY = """
BEGIN
  RAISE LOG 'airflow_ha_audit %', to_jsonb(NEW)::text;
  RETURN NULL;
END
"""


def current(conn):
    """(function body or None, trigger present)."""
    body = conn.execute(sqlalchemy.text("SELECT prosrc FROM pg_proc WHERE proname = :f"), {"f": FUNCTION}).scalar()
    trigger = conn.execute(sqlalchemy.text(
        "SELECT count(*) FROM pg_trigger WHERE tgname = :t AND tgrelid = 'log'::regclass AND NOT tgisinternal"),
        {"t": TRIGGER}).scalar()
    return body, bool(trigger)


def main(argv):
    engine = sqlalchemy.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with engine.begin() as conn:
        body, trigger = current(conn)
        if body == BODY and trigger:
            return 0
        if "--check" in argv:
            return 1
        conn.execute(sqlalchemy.text(
            f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $airflow_ha${BODY}$airflow_ha$"))
        conn.execute(sqlalchemy.text(f"DROP TRIGGER IF EXISTS {TRIGGER} ON log"))
        conn.execute(sqlalchemy.text(
            f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON log FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"))
    print(f"trigger {TRIGGER} on table log: each row onto the server log")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
